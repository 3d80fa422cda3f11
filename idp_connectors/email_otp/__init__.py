"""Email one-time passcode: the last-resort home identity (issuer `mail`)."""
