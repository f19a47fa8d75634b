import pytest

from flakewatch.layers import (
    LayerRulesError,
    load_layer_rules,
    parse_layer_rules,
)

DEFAULTS = load_layer_rules()


@pytest.mark.parametrize(
    ("file", "classname", "suite", "layer"),
    [
        # Unit naming conventions
        ("tests/test_cart.py", "tests.test_cart.TestCart", "pytest", "unit"),
        ("pkg/cart/cart_test.go", "github.com/acme/cart", "", "unit"),
        ("web/src/Button.test.tsx", "", "", "unit"),
        ("web/src/button.spec.ts", "", "", "unit"),
        ("", "com.acme.cart.CartTest", "", "unit"),
        ("src/test/java/com/acme/CartTests.java", "", "", "unit"),
        ("tests/unit/helpers.py", "", "", "unit"),
        # Maven Failsafe and integration folders / package segments
        ("", "com.acme.cart.CartIT", "", "integration"),
        ("", "com.acme.cart.ITCart", "", "integration"),
        ("", "com.acme.cart.CartITCase", "", "integration"),
        ("src/test/java/com/acme/OrderIT.java", "", "", "integration"),
        (
            "tests/integration/test_db.py",
            "tests.integration.test_db.TestDb",
            "",
            "integration",
        ),
        ("", "tests.integration.test_db.TestDb", "", "integration"),
        ("", "github.com/acme/pay/integration", "", "integration"),
        ("test/functional/orders_controller_test.rb", "", "", "integration"),
        # End-to-end: folders, Playwright specs under e2e/, Cypress, *.e2e.*
        ("web/e2e/login.spec.ts", "", "", "e2e"),
        ("cypress/integration/checkout.spec.js", "", "", "e2e"),
        ("web/cypress/e2e/cart.cy.ts", "", "", "e2e"),
        ("src/app.cy.js", "", "", "e2e"),
        ("api/test/app.e2e-spec.ts", "", "", "e2e"),
        ("src/login.e2e.ts", "", "", "e2e"),
        ("test/system/users_test.rb", "", "", "e2e"),
        ("tests/acceptance/test_signup.py", "", "", "e2e"),
        ("", "tests.e2e.test_checkout.TestFlow", "", "e2e"),
        ("", "", "e2e", "e2e"),
        # Nothing recognisable
        ("README.md", "", "", "unknown"),
        ("", "Checkout renders the basket", "Checkout", "unknown"),
        ("", "", "", "unknown"),
    ],
)
def test_default_rules_recognise_common_conventions(file, classname, suite, layer):
    assert DEFAULTS.classify(file=file, classname=classname, suite=suite) == layer


def test_project_rules_come_after_the_defaults_and_win():
    rules = load_layer_rules(
        "# ours\n"
        "/services/*/tests/contract/ integration\n"
        "classname:com.acme.smoke.* e2e\n"
        "suite:Nightly* e2e\n"
        "tests/integration/test_pure.py unknown\n"
    )
    assert (
        rules.classify(file="services/cart/tests/contract/test_x.py") == "integration"
    )
    assert rules.classify(classname="com.acme.smoke.CartTest") == "e2e"
    assert rules.classify(suite="Nightly checkout") == "e2e"
    assert rules.classify(file="tests/integration/test_pure.py") == "unknown"
    assert rules.classify(file="tests/integration/test_db.py") == "integration"


def test_rules_alone_without_defaults():
    rules = load_layer_rules("*.py unit\n", with_defaults=False)
    assert rules.classify(file="a/b.py") == "unit"
    assert rules.classify(file="a/OrderIT.java") == "unknown"


def test_the_last_matching_line_wins():
    rules = load_layer_rules("e2e/ e2e\n*.py unit\n", with_defaults=False)
    assert rules.classify(file="e2e/test_x.py") == "unit"
    assert rules.rule_for(file="e2e/test_x.py").line == 2


def test_escaped_spaces_in_patterns():
    rules = load_layer_rules("/end\\ to\\ end/ e2e\n", with_defaults=False)
    assert rules.classify(file="end to end/a.py") == "e2e"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tests/ smoke\n", "line 1: layer 'smoke' is not one of"),
        ("# c\ntests/\n", "line 2: expected '<pattern> <layer>'"),
        ("a/***/b unit\n", "line 1: a pattern cannot hold three asterisks"),
        ("classname:a..b unit\n", "line 1: 'a..b' has an empty name segment"),
    ],
)
def test_bad_rule_lines_are_refused_with_their_line(text, message):
    with pytest.raises(LayerRulesError, match="^" + message.replace("*", r"\*")):
        parse_layer_rules(text)
