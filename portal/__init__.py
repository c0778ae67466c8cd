"""The portal: a multi-tenant settings portal for outgoing mail.

Importing a part (the SMTP client, say) loads no Flask: the app is assembled in `portal.app`.
"""
