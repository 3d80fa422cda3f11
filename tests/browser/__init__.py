"""Browser tests: headless Chromium (Debian's ``chromium``, driven by Playwright) against the real server."""
