"""The "My apps" pages for a signed-in user: their applications, their profile, leaving the organisation."""
