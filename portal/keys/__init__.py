"""What opens a mailbox or the API: OAuth2 grants and their access tokens, and API keys."""
