"""portal.outbox.headers: header classes made once, repeating values parsed once, bounded."""

from email.policy import SMTP

from portal.outbox.headers import POLICY, KeepingRegistry


def test_a_repeating_header_is_parsed_once_and_folds_as_the_stdlib_does():
    registry = KeepingRegistry()
    first = registry("From", "Example Portal <noreply@example.com>")
    assert registry("From", "Example Portal <noreply@example.com>") is first
    assert first.fold(policy=POLICY) == SMTP.header_factory("From", str(first)).fold(policy=SMTP)
    assert first.fold(policy=POLICY) == "From: Example Portal <noreply@example.com>\r\n"


def test_each_spelling_of_a_name_keeps_its_own_header():
    registry = KeepingRegistry()
    upper = registry("MIME-Version", "1.0")
    lower = registry("Mime-Version", "1.0")
    assert upper is not lower
    assert upper.fold(policy=POLICY) == "MIME-Version: 1.0\r\n"
    assert lower.fold(policy=POLICY) == "Mime-Version: 1.0\r\n"


def test_headers_that_differ_per_mail_are_not_kept():
    registry = KeepingRegistry()
    assert registry("Subject", "Hello") is not registry("Subject", "Hello")
    assert registry("To", "a@example.org") is not registry("To", "a@example.org")


def test_the_least_recently_used_header_is_dropped_past_the_size():
    registry = KeepingRegistry(size=2)
    a = registry("From", "a@example.com")
    b = registry("From", "b@example.com")
    assert registry("From", "a@example.com") is a  # a is now the most recently used
    registry("From", "c@example.com")
    assert registry("From", "a@example.com") is a
    assert registry("From", "b@example.com") is not b


def test_header_classes_are_made_once_per_name():
    registry = KeepingRegistry()
    assert registry["Subject"] is registry["Subject"]
    assert registry["To"].max_count == SMTP.header_factory["To"].max_count == 1
