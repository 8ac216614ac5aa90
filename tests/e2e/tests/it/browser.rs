//! The Accounts page in headless Chromium (tests/browser): sign in by link, reconnect, disconnect.
