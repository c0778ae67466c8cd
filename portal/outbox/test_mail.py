"""The test mail an admin queues from the mail settings screens: real mail, marked as a test."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal import audit
from portal.exceptions import MailValidationError
from portal.i18n import language_of, speaking
from portal.models import Company, OutboxMessage, User
from portal.outbox import intake
from portal.text import normalize_email
from portal.wire.sentence import N_

SUBJECT = N_("Test mail from the portal")  # English; each mail is in its asker's language
MSG_RECIPIENT = _l("Enter the address the test mail goes to.")


def _subject() -> str:
    return _(SUBJECT)


def _body(company: Company | None, user: User) -> str:
    queued = _(
        "%(user)s queued this test mail through the portal's outbox.", user=user.display_name
    )
    if company is not None:
        sent = _(
            "It was sent by a worker with the mail settings of %(company)s in force, "
            "as any other mail is.",
            company=company.name,
        )
    else:
        sent = _("It was sent by a worker with the global settings in force, as any other mail is.")
    return f"{queued}\n{sent}\n"


def send(company: Company | None, user: User, recipient: str) -> OutboxMessage:
    """Queue one test mail with the settings in force for the company (None: global); commits.

    The mail is written in the language of the user who asks for it.

    Raises MailValidationError (its errors by field) for a bad recipient or settings that
    cannot compose a mail; nothing is stored then. The audit row is stored with the mail.
    """
    try:
        address = normalize_email(recipient)
    except Exception as exc:  # noqa: BLE001 - every reason gets the same message
        raise MailValidationError({"test_recipient": MSG_RECIPIENT}) from exc

    def mark(message: OutboxMessage) -> None:
        message.is_test = True
        changes = {"recipient": address, "mail": f"#{message.id}"}
        audit.record("mail_settings.test_mail", changes, user, company)

    with speaking(language_of(user)):
        subject, text = _subject(), _body(company, user)
    return intake.send(
        company,
        to=[address],
        subject=subject,
        text=text,
        user=None,  # the configured sender, as for the connection test's mail
        before_commit=mark,
    )
