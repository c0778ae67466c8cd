"""A library that speaks SMTP: session, transport, errors, trace, egress guard, probe, diagnosis.

It imports no Flask, no database and no other part of the portal: callers hand it values.
"""
