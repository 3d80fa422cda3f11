"""The owners' page (``/owner``): a signed-in user adds guests to the apps and groups they own."""
