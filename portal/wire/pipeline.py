"""The envelope of one mail, MAIL FROM, RCPT TO and DATA, written in one go when pipelined."""

from collections.abc import Sequence

from portal.wire.errors import SmtpError
from portal.wire.transport import Transport


class Pipeline:
    """Commands answered in order: all written at once if the server offers PIPELINING.

    Without PIPELINING each command is written when its reply is asked for, so the server
    sees exactly the reply-by-reply conversation.
    """

    def __init__(self, transport: Transport, commands: Sequence[str]) -> None:
        self._transport, self._commands = transport, list(commands)
        self._sent = self._read = 0
        # RFC 2920: only DATA may end a group, and it does; EHLO, STARTTLS and AUTH are behind us.
        if transport.has_extn("pipelining"):
            transport.write_commands(self._commands)
            self._sent = len(self._commands)

    def reply(self) -> tuple[int, bytes]:
        """The reply to the next command, written first unless it went out already."""
        if self._read == self._sent:
            self._transport.write_commands(self._commands[self._sent : self._sent + 1])
            self._sent += 1
        self._read += 1
        return self._transport.getreply()

    def settled(self, error: SmtpError) -> SmtpError:
        """`error`, once the replies still owed to commands sent are read: the server is in step.

        The connection is closed instead when a reply fails, when the server says it closes
        (421), or when it answers DATA with 354 although no mail follows. RFC 2920 allows
        ending that with a lone "." too, but that hands the server an empty mail to judge;
        closing is simpler and safe, and the next mail opens a fresh connection.
        """
        if error.code == 421:  # the server is closing: nothing more will come
            return error
        try:
            while self._read < self._sent:
                self._read += 1
                if self._transport.getreply()[0] in (354, 421):
                    self._transport.close()
                    break
        except SmtpError:
            self._transport.close()
        return error
