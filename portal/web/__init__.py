"""The screens and the API: parse input, call one service, commit once, render; never opens SMTP."""
