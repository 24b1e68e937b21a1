"""The live admin page: who may see it (:mod:`squall.admin.auth`) and its files (``assets/``).

The page itself is static: ``assets/index.html`` with ``admin.js``, ``admin.css`` and uPlot
(vendored from npm, MIT, see ``assets/uPlot.LICENSE``) for the charts. Its numbers come over an
admin-only Squall socket, pushed once a second by :class:`squall.monitor.Monitor`.
"""

from pathlib import Path

from .auth import COOKIE, AdminAuth, bearer_token

__all__ = ["ASSETS", "COOKIE", "AdminAuth", "bearer_token"]

#: The page's files, served at ``<servers.web.admin.path>/assets/<name>``.
ASSETS = Path(__file__).resolve().parent / "assets"
