"""Click and open tracking: which links are rewritten, what the redirect may go to, the pixel."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hookhub.email.links import track_links

FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"
UNSUBSCRIBE = "https://hooks.example.com/t/u/UNSUB?x=1&y=2"
PIXEL = "https://hooks.example.com/t/o/OPEN"


def click(index: int) -> str:
    return f"https://hooks.example.com/t/c/TOKEN{index}?a=1&b=2"


def hrefs(html: str) -> list[str]:
    return [
        htmllib.unescape(next(g for g in m.groups() if g is not None))
        for m in re.finditer(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", html, re.I)
    ]


def test_web_links_are_rewritten_and_everything_else_left_alone() -> None:
    source = (
        '<a href="https://shop.example.com/p?a=1&amp;b=2" class="btn">Buy</a>'
        "<a href='http://old.example.com/'>Old</a>"
        "<A HREF=https://caps.example.com/x>Caps</A>"
        '<a href="mailto:help@example.com">Mail</a><a href="tel:+3902">Call</a>'
        '<a href="#top">Top</a><a name="anchor">Anchor</a><a>Bare</a>'
        f'<a href="{htmllib.escape(UNSUBSCRIBE)}">Unsubscribe</a>'
        '<a href="https://shop.example.com/p?a=1&amp;b=2">Buy again</a>'
        '<link href="https://cdn.example.com/style.css"><img src="https://cdn.example.com/i.png">'
    )
    tracked = track_links(source, click_url=click, open_pixel_url=None, unsubscribe_url=UNSUBSCRIBE)
    assert tracked.links == [
        "https://shop.example.com/p?a=1&b=2",
        "http://old.example.com/",
        "https://caps.example.com/x",
    ]
    assert hrefs(tracked.html) == [
        click(0), click(1), click(2), "mailto:help@example.com", "tel:+3902", "#top",
        UNSUBSCRIBE, click(0), "https://cdn.example.com/style.css",
    ]  # fmt: skip
    assert 'class="btn">Buy</a>' in tracked.html
    assert '<img src="https://cdn.example.com/i.png">' in tracked.html


def test_attributes_with_angle_brackets_and_other_quotes_survive() -> None:
    source = """<a title="a > b" data-x='"q"' href="https://x.example/1" >x</a>"""
    tracked = track_links(source, click_url=click, open_pixel_url=None)
    assert tracked.links == ["https://x.example/1"]
    assert tracked.html == (
        f"""<a title="a > b" data-x='"q"' href="{htmllib.escape(click(0))}" >x</a>"""
    )


def test_the_pixel_goes_before_the_body_ends_or_at_the_end() -> None:
    tracked = track_links(
        "<html><body><p>x</p></BODY></html>", click_url=None, open_pixel_url=PIXEL
    )
    assert re.fullmatch(
        r'<html><body><p>x</p><img src="https://hooks\.example\.com/t/o/OPEN" width="1" '
        r'height="1"[^>]*/></BODY></html>',
        tracked.html,
    )
    assert tracked.links == []
    fragment = track_links("<p>x</p>", click_url=None, open_pixel_url=PIXEL).html
    assert fragment.startswith("<p>x</p><img src=")
    assert fragment.endswith("/>")
    assert track_links("<p>x</p>", click_url=None, open_pixel_url=None).html == "<p>x</p>"


def test_a_real_newsletter_keeps_its_markup_and_tracks_each_link_once() -> None:
    source = (FIXTURES / "newsletter_tables.html").read_text()
    tracked = track_links(source, click_url=click, open_pixel_url=PIXEL)
    assert tracked.links == [
        "https://shop.example.com/?utm_source=newsletter&utm_medium=email",
        "https://shop.example.com/sale",
    ]
    # Outlook's VML button (in a conditional comment) is not an <a>: left as it was.
    assert 'href="https://shop.example.com/sale" style="height:44px;' in tracked.html
    # Template placeholders are not links yet (tracking runs on rendered HTML).
    assert '<a href="{{ product.url }}">' in tracked.html
    assert tracked.html.count("/t/o/OPEN") == 1
    assert tracked.html.index("/t/o/OPEN") < tracked.html.index("</body>")
    pixel = re.search(r'<img src="https://hooks\.example\.com/t/o/OPEN"[^>]*/>', tracked.html)
    assert pixel is not None
    restored = tracked.html.replace(pixel.group(0), "")
    for index, link in enumerate(tracked.links):
        restored = restored.replace(htmllib.escape(click(index)), htmllib.escape(link))
    assert restored == source


@given(
    st.text(
        alphabet=st.sampled_from(list("<a hrefHREF=\"'> https://x.example/#mailto:")), max_size=200
    )
)
def test_any_input_is_handled_and_only_web_links_are_collected(source: str) -> None:
    tracked = track_links(source, click_url=click, open_pixel_url=PIXEL)
    assert all(link.lower().startswith(("http://", "https://")) for link in tracked.links)
    assert len(set(tracked.links)) == len(tracked.links)
