"""Text from files and paths made safe to print on a terminal.

A model label, a file name or a message quoting one comes from outside minvert; printed raw,
an ESC sequence in it drives the terminal (colours, cursor moves, window titles) and a
newline can forge a line such as ``minvert: error: ...``. :func:`escape_text` writes every
character that is not printable (control characters, line and paragraph separators,
formatting marks such as right-to-left overrides, lone surrogates) as a Python escape.
"""


def escape_text(text):
    """``text`` with each non-printable character written as ``\\x1b``, ``\\n``, ``\\u202e``...;
    plain spaces and printable text of any script are kept."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else ascii(c)[1:-1] for c in text)
