"""The dashboard's browser tests use the headless Chromium fixture of tests.browser."""
from __future__ import annotations

from tests import browser

browsers = browser.browsers  # the fixture, offered to this folder's tests
