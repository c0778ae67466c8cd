"""The email package's policy for rendering mail, with its header classes and values kept.

The stdlib's header factory makes a new class for every header it sets, and parses the
same sender and MIME headers for every mail. A header object is immutable (a str with its
parse tree, folded from that tree alone), so one made for a name and value can stand in
every mail that sets the same name and value: the bytes out are the same.
"""

import threading
from collections import OrderedDict
from email.headerregistry import BaseHeader, HeaderRegistry
from email.policy import SMTP

# Headers whose values repeat from mail to mail: the sender and the MIME headers. Not
# To, Subject, Date or Message-ID: they differ from mail to mail.
REPEATING_HEADERS = frozenset(
    {"from", "sender", "mime-version", "content-type", "content-transfer-encoding"}
)
# Parsed values kept, the least recently used dropped first: a kept header is ~25 kB, and a
# multipart boundary in Content-Type makes a value used once.
MAX_KEPT_HEADERS = 256


class KeepingRegistry(HeaderRegistry):
    """The stdlib's header factory with each class made once and repeating values parsed once."""

    def __init__(self, size: int = MAX_KEPT_HEADERS) -> None:
        super().__init__()
        self.size = size
        self._classes: dict[str, type[BaseHeader]] = {}
        self._kept: OrderedDict[tuple[str, str], BaseHeader] = OrderedDict()
        self._lock = threading.Lock()  # web threads share it

    def __getitem__(self, name: str) -> type[BaseHeader]:
        found = self._classes.get(name)
        if found is None:
            found = self._classes.setdefault(name, super().__getitem__(name))
        return found

    def __call__(self, name: str, value: object) -> BaseHeader:
        if type(value) is not str or name.lower() not in REPEATING_HEADERS:
            return self[name](name, value)
        key = (name, value)  # the name as given: a header folds with its own spelling
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        made = self[name](name, value)
        with self._lock:
            self._kept[key] = made
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return made


# SMTP's policy (CRLF line ends) with the registry above, shared by every mail rendered.
POLICY = SMTP.clone(header_factory=KeepingRegistry())
