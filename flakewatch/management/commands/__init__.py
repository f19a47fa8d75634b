"""flakewatch's ``manage.py`` commands, one module each."""
