"""The text part of an email made from its HTML: readable plain text, as a reader would want it.

Paragraphs and headings become blank-line separated blocks, ``<br>`` a line break, list items
``- item`` (``1. item`` in ordered lists), links ``label (url)``, table cells are separated by
spaces and rows by lines. Entities are decoded; tags, comments, scripts, styles and the head are
dropped. A small tokenizer (one regular expression, scanning the way ``html.parser`` does, at
several times its speed) accepts any input; this module must never raise on odd HTML, and never
fetch or execute anything. :mod:`hookhub.email.textpart` runs it once over a template's source.
"""

from __future__ import annotations

import re
from html import unescape

_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
        "h6", "header", "hr", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
        "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip
_LINES = frozenset({"tr", "li", "caption"})
_HIDDEN = frozenset({"script", "style", "head", "title", "template", "noscript", "object"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_TOKEN = re.compile(
    r"""<!--.*?(?:-->|\Z)|<[!?][^>]*>?"""
    r"""|<(/?)([A-Za-z][A-Za-z0-9:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>"""
    r"""|[^<]+|<""",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")
_RAW_TEXT = {"script": re.compile(r"</script\s*>", re.I), "style": re.compile(r"</style\s*>", re.I)}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_MANY_BLANKS = re.compile(r"\n{3,}")
_TRAILING_SPACES = re.compile(r"[ \t]+(?=\n|\Z)")


def _attributes(raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(raw):
        name = match.group(1).lower()
        value = match.group(2)
        if value is None:
            value = match.group(3) if match.group(3) is not None else match.group(4) or ""
        found.setdefault(name, unescape(value) if "&" in value else value)
    return found


class TextWriter:
    """Turns a stream of HTML tokens into text; :mod:`hookhub.email.textpart` extends it."""

    link_prefixes: tuple[str, ...] = ("http://", "https://")

    def __init__(self) -> None:
        self.out: list[str] = []
        self.newlines = 0  # line breaks owed before the next text
        self.at_line_start = True
        self.hidden: list[str] = []
        self.pre = 0
        self.lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self.links: list[tuple[str, int, str]] = []  # (href, position in out, image alt seen)

    # output

    def _break(self, count: int) -> None:
        if self.out:
            self.newlines = max(self.newlines, count)

    def _flush(self) -> None:
        """Writes the line breaks owed (called just before the next output)."""
        self.out.append("\n" * self.newlines)
        self.newlines = 0

    def _write(self, text: str) -> None:
        if self.newlines:
            self._flush()
            self.at_line_start = True
        if self.at_line_start or (text[0] == " " and self.out and self.out[-1][-1:] == " "):
            text = text.lstrip(" ")  # spaces around an empty element collapse too
            if not text:
                return
        self.out.append(text)
        self.at_line_start = text.endswith("\n")

    def _marker(self, marker: str) -> None:
        """A list marker: starts its line, and the item's text follows without leading space."""
        if (self.newlines or not self.at_line_start) and self.out:
            self.newlines = max(self.newlines, 1)
            self._flush()
        self.out.append(marker)
        self.at_line_start = True

    # parser callbacks

    def feed(self, html: str) -> None:
        pos, end = 0, len(html)
        while pos < end:
            match = _TOKEN.match(html, pos)
            if match is None:  # unreachable: the last alternative matches any "<"
                break
            pos = match.end()
            tag = match.group(2)
            if tag is None:
                token = match.group(0)
                if not token.startswith(("<!", "<?")) or token == "<":
                    self.handle_data(unescape(token) if "&" in token else token)
                continue
            tag = tag.lower()
            raw = match.group(3)
            if match.group(1):
                self.handle_endtag(tag)
                continue
            self.handle_starttag(tag, raw)
            if raw.endswith("/") and tag not in _VOID:
                self.handle_endtag(tag)
            closing = _RAW_TEXT.get(tag)
            if closing is not None:  # script and style end only at their own end tag
                found = closing.search(html, pos)
                pos = found.end() if found else end
                self.handle_endtag(tag)

    def handle_starttag(self, tag: str, raw: str) -> None:
        if self.hidden:
            if tag not in _VOID:
                self.hidden.append(tag)
            return
        if tag in _HIDDEN:
            self.hidden.append(tag)
            return
        if tag == "br":
            if self.newlines:
                self.newlines += 1
            else:
                self.out.append("\n")
                self.at_line_start = True
        elif tag in ("ul", "ol"):
            self._break(2 if not self.lists else 1)
            self.lists.append([tag == "ol", 0])
        elif tag == "li":
            self._break(1)
            marker = "- "
            if self.lists:
                self.lists[-1][1] += 1
                if self.lists[-1][0]:
                    marker = f"{self.lists[-1][1]}. "
            self._marker("  " * max(len(self.lists) - 1, 0) + marker)
        elif tag in _BLOCKS:
            self._break(2)
            if tag == "pre":
                self.pre += 1
        elif tag in _LINES:
            self._break(1)
        elif tag in ("td", "th"):
            if self.out and not self.at_line_start and not self.newlines:
                self._write(" ")
        elif tag == "a":
            href = _attributes(raw).get("href", "")
            self.links.append((href.strip(), len(self.out), ""))
        elif tag == "img" and self.links:
            alt = _attributes(raw).get("alt", "").strip()
            if alt:
                href, start, _ = self.links[-1]
                self.links[-1] = (href, start, alt)

    def handle_endtag(self, tag: str) -> None:
        if self.hidden:
            if tag in self.hidden:
                while self.hidden and self.hidden.pop() != tag:
                    pass
            return
        if tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._break(2 if not self.lists else 1)
        elif tag in _BLOCKS:
            if tag == "pre" and self.pre:
                self.pre -= 1
            self._break(2)
        elif tag in _LINES:
            self._break(1)
        elif tag == "a" and self.links:
            self._close_link(*self.links.pop())

    def _close_link(self, href: str, start: int, alt: str) -> None:
        label = " ".join("".join(self.out[start:]).split())
        if not label and alt:
            self._write(alt)
            label = alt
        lowered = href.lower()
        if lowered.startswith(self.link_prefixes):
            if href != label:
                self._write(f" ({href})" if label else href)
        elif lowered.startswith("mailto:"):
            address = href[len("mailto:") :].split("?", 1)[0]
            if address and address != label:
                self._write(f" ({address})" if label else address)

    def handle_data(self, data: str) -> None:
        if self.hidden or not data:
            return
        if self.pre:
            if self.newlines:
                self._flush()
            self.out.append(data)
            self.at_line_start = data.endswith("\n")
            return
        text = _SPACES.sub(" ", data)
        if text == " " and (self.at_line_start or self.newlines):
            return
        self._write(text)

    def text(self) -> str:
        return tidy_text("".join(self.out))


def tidy_text(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline ("" if empty)."""
    # Each pass runs only when its cheap substring test says it has work (campaigns call this
    # for every recipient, and a regex scan costs far more than ``in``).
    if " \n" in text or "\t\n" in text or text.endswith((" ", "\t")):
        text = _TRAILING_SPACES.sub("", text)
    if "\n\n\n" in text:
        text = _MANY_BLANKS.sub("\n\n", text)
    tidy = text.strip("\n")
    return tidy + "\n" if tidy else ""


def html_to_text(html: str) -> str:
    """Readable plain text for ``html`` (any input; never raises)."""
    writer = TextWriter()
    writer.feed(html)
    return writer.text()
