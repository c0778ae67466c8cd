"""The test mail an admin queues from the mail settings screens: real mail, marked as a test."""

from portal import audit
from portal.exceptions import MailValidationError
from portal.models import Company, OutboxMessage, User
from portal.outbox import intake
from portal.text import normalize_email

SUBJECT = "Test mail from the portal"
MSG_RECIPIENT = "Enter the address the test mail goes to."


def _body(company: Company | None, user: User) -> str:
    scope = f"the mail settings of {company.name}" if company is not None else "the global settings"
    return (
        f"{user.display_name} queued this test mail through the portal's outbox.\n"
        f"It was sent by a worker with {scope} in force, as any other mail is.\n"
    )


def send(company: Company | None, user: User, recipient: str) -> OutboxMessage:
    """Queue one test mail with the settings in force for the company (None: global); commits.

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

    return intake.send(
        company,
        to=[address],
        subject=SUBJECT,
        text=_body(company, user),
        user=None,  # the configured sender, as for the connection test's mail
        before_commit=mark,
    )
