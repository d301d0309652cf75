"""A text template derived once from an HTML template's source, so no HTML is parsed per email.

Making the text part from each rendered HTML costs a parse per recipient, which a campaign of
100,000 cannot afford. Instead the HTML *source* is converted once: every ``{{ ... }}`` and
``{% ... %}`` stands in as a placeholder while :mod:`hookhub.email.htmltext` turns the markup
into text, and comes back afterwards, giving a (non-escaped) text template. Values then appear
unescaped in the text, as they should; ``<a href="{{ url }}">label</a>`` becomes
``label ({{ url }})``. Line breaks owed across a loop's boundary are placed so that each
iteration is separated as the per-render conversion would separate it.

When the conversion cannot be trusted it answers None and the caller converts each rendered
HTML instead: a statement lost inside a tag, a comment or a script (the text template's blocks
would not match), an ordered list numbered by a loop, ``<pre>`` (its spaces count),
``{% raw %}``, or ``|safe`` output (markup the text would show as tags). Tests compare both
ways on real-shaped newsletters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hookhub.email.htmltext import TextWriter, tidy_text

_EXPRESSION = "\ue000"
_END = "\ue001"
_OPEN = "\ue002"  # {% if %}, {% with %}, ...: owed breaks go before it
_MIDDLE = "\ue003"  # {% else %}, {% elif %}: owed breaks carry past it
_CLOSE = "\ue004"  # {% endif %}, ...: owed breaks carry past it
_NEUTRAL = "\ue005"  # {% set x = 1 %}: no output, no effect on lines
_FOR = "\ue006"  # {% for %}
_ENDFOR = "\ue007"  # {% endfor %}
_SYNTAX = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_STAND_IN = re.compile("([\ue000\ue002-\ue007])(\\d+)\ue001")
_STATEMENT = re.compile("[\ue002-\ue007]\\d+\ue001")
_STATEMENT_NAME = re.compile(r"\{%[-+]?\s*(\w*)")
_OPENS = frozenset({"if", "with", "macro", "call", "filter", "block", "trans"})
_MIDDLES = frozenset({"else", "elif", "pluralize"})
_UNTRUSTED = re.compile(
    r"[\ue000-\ue007]|\{%-?\s*raw\b|\|\s*safe\b|\{%-?\s*autoescape\b|<pre\b", re.IGNORECASE
)
_OPENS_SYNTAX = re.compile("\\{(?=[{%#\ue000\ue002-\ue007])")
_EMPTY_LINK = re.compile(r" \(\)")
_INNER_SPACES = re.compile(r"(?<=\S) {2,}")  # an empty branch between two spaces
_LEADING_SPACES = re.compile(r"^ +(?=[^ ])(?!- |\d+\. )", re.MULTILINE)  # but not a nested list's


def _kind(token: str) -> str:
    if token.startswith("{{"):
        return _EXPRESSION
    match = _STATEMENT_NAME.match(token)
    name = match.group(1) if match else ""
    if name == "for":
        return _FOR
    if name == "endfor":
        return _ENDFOR
    if name in _OPENS or (name == "set" and "=" not in token):
        return _OPEN
    if name in _MIDDLES:
        return _MIDDLE
    if name.startswith("end"):
        return _CLOSE
    return _NEUTRAL


@dataclass
class _Block:
    kind: str
    slot: int = -1  # for loops: where the breaks before the loop go, in ``out``
    before: int = 0  # breaks owed when the loop opened
    leading: int | None = None  # breaks the body owed before its first output


class _TemplateTextWriter(TextWriter):
    link_prefixes = (*TextWriter.link_prefixes, _EXPRESSION)

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[_Block] = []
        self.ordered_at: list[int] = []  # the block depth each open <ol> started at
        self.untrusted = False

    def _flush(self) -> None:
        loop = self.blocks[-1] if self.blocks and self.blocks[-1].kind == _FOR else None
        if loop is not None and loop.leading is None:
            # The body's first breaks merge with those before the loop and between iterations.
            loop.leading = self.newlines
            self.out[loop.slot] = "\n" * max(loop.before, self.newlines)
            self.newlines = 0
            return
        super()._flush()

    def _write(self, text: str) -> None:
        loop = self.blocks[-1] if self.blocks and self.blocks[-1].kind == _FOR else None
        if loop is not None and loop.leading is None and not self.newlines and text.strip():
            loop.leading = 0  # the body starts on the line the loop is on
        super()._write(text)

    def handle_data(self, data: str) -> None:
        if self.hidden or not data:
            return
        pos = 0
        for match in _STATEMENT.finditer(data):
            super().handle_data(data[pos : match.start()])
            self._statement(match.group(0))
            pos = match.end()
        super().handle_data(data[pos:])

    def _statement(self, token: str) -> None:
        kind = token[0]
        if kind == _FOR:
            self.blocks.append(_Block(_FOR, slot=len(self.out), before=self.newlines))
            self.out.append("\n" * self.newlines)
            if self.newlines:
                self.newlines = 0
                self.at_line_start = True
        elif kind == _ENDFOR:
            loop = self.blocks.pop() if self.blocks else None
            if loop is None or loop.kind != _FOR:
                self.untrusted = True
            else:
                self.newlines = max(self.newlines, loop.leading or 0)
                if self.newlines:
                    super()._flush()
                    self.at_line_start = True
        elif kind == _OPEN:
            if self.newlines:
                self._flush()
                self.at_line_start = True
            self.blocks.append(_Block(_OPEN))
        elif kind == _MIDDLE and self.blocks and self.blocks[-1].kind == _FOR:
            self.untrusted = True  # {% for %}...{% else %}: the loop's breaks would be wrong
        elif kind == _CLOSE and (not self.blocks or self.blocks.pop().kind == _FOR):
            self.untrusted = True
        self.out.append(token)

    def handle_starttag(self, tag: str, raw: str) -> None:
        if not self.hidden:
            if tag == "ol":
                self.ordered_at.append(len(self.blocks))
            elif tag == "li" and self.lists and self.lists[-1][0] and self.ordered_at:
                # An item numbered inside a loop: only a render can count.
                self.untrusted |= self.ordered_at[-1] != len(self.blocks)
        super().handle_starttag(tag, raw)

    def handle_endtag(self, tag: str) -> None:
        if not self.hidden and tag == "ol" and self.ordered_at:
            self.ordered_at.pop()
        super().handle_endtag(tag)


def tidy_derived(text: str) -> str:
    """The rendered derived text, tidied as the per-render conversion would leave it."""
    if " ()" in text:
        text = _EMPTY_LINK.sub("", text)
    if "  " in text:
        text = _INNER_SPACES.sub(" ", text)
    if "\n " in text or text.startswith(" "):
        text = _LEADING_SPACES.sub("", text)
    return tidy_text(text)


def derive_text_source(html_source: str) -> str | None:
    """The text template for ``html_source``, or None when it must be made per render."""
    if _UNTRUSTED.search(html_source):
        return None
    tokens: list[str] = []

    def stand_in(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("{#"):
            return ""
        tokens.append(token)
        return f"{_kind(token)}{len(tokens) - 1}{_END}"

    writer = _TemplateTextWriter()
    writer.feed(_SYNTAX.sub(stand_in, html_source))
    text = writer.text()
    if writer.untrusted or writer.blocks:
        return None
    kept = {int(index) for _, index in _STAND_IN.findall(text)}
    if any(t.startswith("{%") and i not in kept for i, t in enumerate(tokens)):
        return None
    # Literal text that reads as template syntax ("&#123;{" decodes to "{{") stays literal.
    text = _OPENS_SYNTAX.sub("{{ '{' }}", text)
    return _STAND_IN.sub(lambda match: tokens[int(match.group(2))], text)
