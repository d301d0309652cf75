"""The text part made from HTML: what a reader of the plain-text email sees."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookhub.email.htmltext import html_to_text

FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo\n"),
        ("Line<br>break<br/><br />twice", "Line\nbreak\n\ntwice\n"),
        ("<h1>Title</h1>body", "Title\n\nbody\n"),
        ("<p>A  lot\n of   <b>space</b> </p>", "A lot of space\n"),
        (
            "<a href='https://x.example/a?b=1&amp;c=2'>label</a>",
            "label (https://x.example/a?b=1&c=2)\n",
        ),
        ('<a href="https://x.example">https://x.example</a>', "https://x.example\n"),
        (
            '<a href="https://x.example"><img src="l.png" alt="Logo"></a>',
            "Logo (https://x.example)\n",
        ),
        ('<a href="https://x.example"><img src="l.png"></a>', "https://x.example\n"),
        ('<a href="mailto:a@b.example?subject=Hi">write</a>', "write (a@b.example)\n"),
        ('<a href="tel:+3902">call</a> <a href="#top">top</a>', "call top\n"),
        (
            "<ul><li>a</li><li>b<ol><li>c</li><li>d</li></ol></li></ul>after",
            "- a\n- b\n  1. c\n  2. d\n\nafter\n",
        ),
        ("<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>", "a b\nc d\n"),
        ("&lt;tag&gt; &amp; &eacute; &#233; &#x263A; &nbsp;x", "<tag> & é é ☺ \xa0x\n"),
        ("<head><title>T</title><style>p{}</style></head><body>B</body>", "B\n"),
        ("<script>if (a < b && c > d) { x('</p>') }</script>after", "after\n"),
        ("<SCRIPT>x</SCRIPT ><STYLE>y</style>Z", "Z\n"),
        ("<!-- hidden <p>x</p> -->shown<!--[if mso]>mso<![endif]-->", "shown\n"),
        ("<pre>  keep\n    this</pre>", "  keep\n    this\n"),
        ("a <b></b> b", "a b\n"),
        ("", ""),
        ("<p></p><div>   </div>", ""),
    ],
)
def test_html_becomes_readable_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    ["<", "<<>>", "<a href=", "<a href='x", "<p", "</", "<!--", "<!DOCTYPE", "</ul></li></a>",
     "<a><a><a>", "&", "&#xZZ;", "<td>", "<li>", "<br/", "<img alt='a", "\x00<p>\x00</p>"],
)  # fmt: skip
def test_odd_html_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


@given(st.text(alphabet=st.sampled_from(list("<>/='\"&;# abpli!-\n")), max_size=200))
def test_any_input_gives_text_without_tags_from_the_input(html: str) -> None:
    text = html_to_text(html)
    assert "<p>" not in text
    assert "<li>" not in text


def test_a_real_newsletter_keeps_its_words_and_links_and_drops_its_machinery() -> None:
    text = html_to_text((FIXTURES / "newsletter_blog.html").read_text())
    assert "This week on the blog" in text
    assert "Sent to {{ contact.email }}. Unsubscribe · Privacy" in text
    assert "Privacy (https://example.org/privacy)" in text
    assert "evil.example" not in text
    assert "color:red" not in text
    assert "<" not in text
    assert "“Simplicity is the soul of efficiency.”" in text
