"""aioctx-verify's command line: ``aioctx-verify`` is :func:`aioctx_verify.cli.main`.

The verification suite itself lives in the top-level packages (``impl``, ``stress``, ...);
this package only turns their result objects into commands, tables and files.
"""

__all__: list[str] = []
