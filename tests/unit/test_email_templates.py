"""Email templates: what a recipient sees, what a bad template answers, and the sandbox's bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hookhub.email.htmltext import html_to_text
from hookhub.email.templates import EmailTemplate, TemplateCache
from hookhub.errors import TemplateInvalid, TemplateRenderError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "email"
CONTACT = {
    "id": 7,
    "email": "ann@example.com",
    "attributes": {"FIRSTNAME": "Ann & <Bob>", "PLAN": "pro", "ADDRESS": {"CITY": "Rome"}},
}
UNSUBSCRIBE = "https://hooks.example.com/t/u/abc?x=1&y=2"


def render(subject: str, html: str, text: str | None = None, **params: Any) -> Any:
    template = EmailTemplate.compile(subject, html, text)
    return template.render(contact=CONTACT, params=params, unsubscribe_url=UNSUBSCRIBE)


def test_contact_params_and_unsubscribe_url_render_escaped_only_in_html() -> None:
    rendered = render(
        "Hi {{ contact.FIRSTNAME }}, order {{ params.order_id }}",
        "<p>{{ contact.FIRSTNAME }} ({{ contact.email }})"
        ' <a href="{{ unsubscribe_url }}">x</a></p>',
        "Dear {{ contact.attributes.FIRSTNAME }}, {{ params.order_id }} {{ unsubscribe_url }}",
        order_id="A<1>",
    )
    assert rendered.subject == "Hi Ann & <Bob>, order A<1>"
    assert rendered.html == (
        "<p>Ann &amp; &lt;Bob&gt; (ann@example.com)"
        ' <a href="https://hooks.example.com/t/u/abc?x=1&amp;y=2">x</a></p>'
    )
    assert rendered.text == f"Dear Ann & <Bob>, A<1> {UNSUBSCRIBE}"


def test_attributes_by_any_case_and_nested_values() -> None:
    rendered = render("{{ contact.firstname }}|{{ contact.ADDRESS.CITY }}|{{ contact.id }}", "x")
    assert rendered.subject == "Ann & <Bob>|Rome|7"


@pytest.mark.parametrize(
    "expression",
    [
        "contact.MISSING",
        "contact.MISSING.deeper.still",
        "params.nothing",
        "params.a.b.c",
        "contact.items",
        "contact.attributes.NOPE",
        "nothing_at_all",
    ],
)
def test_a_missing_value_renders_empty(expression: str) -> None:
    rendered = render(f"[{{{{ {expression} }}}}]", f"<p>[{{{{ {expression} }}}}]</p>", a={})
    assert rendered.subject == "[]"
    assert rendered.html == "<p>[]</p>"


def test_params_keys_win_over_mapping_methods() -> None:
    rendered = render("{{ params.items }} {{ params.keys }}", "x", items=3, keys="k")
    assert rendered.subject == "3 k"


def test_the_subject_is_one_line() -> None:
    assert render("Hello\n  {{ params.name }}\r\nBcc: x", "x", name="A\nB").subject == (
        "Hello A B Bcc: x"
    )


@pytest.mark.parametrize(
    ("field", "sources", "line"),
    [
        ("subject", ("Hi {{ contact.email ", "<p>ok</p>", None), 1),
        ("html", ("ok", "<p>\nline two\n{% if x %}\n</p>", None), 3),
        ("html", ("ok", "a\n{{ x | nosuchfilter }}", None), 2),
        ("text", ("ok", "ok", "one\ntwo\nthree {% endfor %}"), 3),
        ("html", ("ok", "{% include 'other.html' %}", None), 1),
        ("html", ("ok", "{% extends 'base.html' %}", None), 1),
    ],
)
def test_a_template_that_does_not_compile_is_refused_naming_field_and_line(
    field: str, sources: tuple[str, str, str | None], line: int
) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        EmailTemplate.compile(*sources)
    assert caught.value.status == 422
    assert caught.value.code == "template_invalid"
    assert caught.value.details["field"] == field
    assert caught.value.details["line"] == line
    assert f"line {line}" in caught.value.message
    assert caught.value.details["error"]


@pytest.mark.parametrize(
    ("html", "says"),
    [
        ("ok\n{{ 1 / 0 }}", "division by zero"),
        ("{{ ''.__class__.__mro__ }}", "not allowed"),
        ("{{ params.__class__ }}", "not allowed"),
        ("{{ range.__globals__ }}", "not allowed"),
        ("{{ 'x' * 1000000000 }}", "characters"),
        ("{{ 'x'|center(1000000000) }}", "too large"),
        ("{{ 'x'.ljust(1000000000) }}", "too large"),
        ("{{ ('x' * 1000)|replace('', 'y' * 5000) }}", "characters"),
        ("{{ 'abc'.replace('', 'y' * 10000000) }}", "characters"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{{ '%999999999d' % 1 }}", "width"),
        ("{{ 2 ** 10000000 }}", "power"),
        ("{{ range(10000000) }}", "range"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "loops",
        ),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "characters",
        ),
        ("{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}", "characters"),
        ("{{ (range(100000)|list)|join('x' * 100) }}", "characters"),
        ("{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}", "rendered part"),
        ("{{ params.missing() }}", "no attribute"),
        ("{{ params.list.append(1) }}", ""),
    ],
)
def test_a_failing_render_raises_one_clear_error(html: str, says: str) -> None:
    template = EmailTemplate.compile("Subject", html, "text")
    with pytest.raises(TemplateRenderError) as caught:
        template.render(contact=CONTACT, params={"list": [1]}, unsubscribe_url="")
    assert caught.value.status == 422
    assert caught.value.details["field"] == "html"
    assert says in caught.value.message
    assert caught.value.message.startswith("html failed to render")


def test_a_render_error_names_the_line() -> None:
    template = EmailTemplate.compile("s", "<p>\n\n{{ params.n / 0 }}</p>", "t")
    with pytest.raises(TemplateRenderError) as caught:
        template.render(contact=CONTACT, params={"n": 1}, unsubscribe_url="")
    assert caught.value.details["line"] == 3


def test_one_recipient_failing_leaves_the_template_usable() -> None:
    template = EmailTemplate.compile("{{ 10 / params.n }}", "<p>x</p>")
    with pytest.raises(TemplateRenderError):
        template.render(contact=CONTACT, params={"n": 0}, unsubscribe_url="")
    assert template.render(contact=CONTACT, params={"n": 4}, unsubscribe_url="").subject == "2.5"


def test_allowed_work_fits_inside_the_bounds() -> None:
    rendered = render(
        "s",
        "{% for i in range(100) %}{% for j in range(100) %}.{% endfor %}{% endfor %}"
        "{{ 'ab' * 1000 }}{{ params.lines|join(', ') }}{{ '%05d'|format(42) }}",
        "t",
        lines=["a", "b"],
    )
    assert rendered.html == "." * 10_000 + "ab" * 1000 + "a, b" + "00042"


def test_without_text_the_text_part_is_made_from_the_html() -> None:
    rendered = render(
        "s",
        "<h1>Hi {{ contact.FIRSTNAME }}</h1><p>See <a href='{{ params.url }}'>your order</a>"
        "</p><ul>{% for line in params.lines %}<li>{{ line }}</li>{% endfor %}</ul>"
        "<style>p { color: red }</style><p><a href='{{ unsubscribe_url }}'>Unsubscribe</a></p>",
        url="https://shop.example.com/o/1?a=1&b=2",
        lines=["Shoe x 2", "Hat <red>"],
    )
    assert rendered.text == (
        "Hi Ann & <Bob>\n\n"
        "See your order (https://shop.example.com/o/1?a=1&b=2)\n\n"
        "- Shoe x 2\n- Hat <red>\n\n"
        f"Unsubscribe ({UNSUBSCRIBE})\n"
    )


NEWSLETTER_PARAMS: list[dict[str, Any]] = [
    {
        "code": "SPRING40",
        "until": "Sunday",
        "products": [
            {"url": "https://shop.example.com/p/1", "image": "https://cdn.example.com/1.jpg",
             "name": "Rose & Oud", "price": "19.90"},
            {"url": "https://shop.example.com/p/2", "image": "https://cdn.example.com/2.jpg",
             "name": "Aloe <gel>", "price": "9.90"},
        ],
        "posts": [{"url": "https://blog.example.org/a", "title": "Caching", "minutes": 4},
                  {"url": "https://blog.example.org/b", "title": "Queues", "minutes": 7}],
        "event": {"date": "May 2", "slug": "meetup", "name": "Meetup"},
    },
    {"code": "", "products": [], "posts": [], "event": None},
]  # fmt: skip

SNIPPETS = [
    "<p>{% for p in params.products %}{{ p.name }}, {% endfor %}</p><p>end</p>",
    "<div>{% for p in params.products %}<p>{{ p.name }}</p>{% endfor %}</div>after",
    "<ul>{% for p in params.products %}<li>{{ p.name }}<ul><li>{{ p.price }}</li></ul></li>"
    "{% endfor %}</ul>",
    "<table>{% for p in params.products %}<tr><td>{{ p.name }}</td><td>{{ p.price }}</td></tr>"
    "{% endfor %}</table>",
    "{% if params.code %}<h2>Code {{ params.code }}</h2>{% else %}<p>No code</p>{% endif %}x",
    "Intro {% if params.event %}<b>{{ params.event.name }}</b>{% endif %} outro<br>next",
    "<p>{% set who = contact.FIRSTNAME %}Hi {{ who }}</p>",
    "<pre>{{ params.code }}\n  kept</pre>",
    "<p>&#123;{ not a tag }} {{ '{{' }}</p>",
]


@pytest.mark.parametrize("source", [*sorted(FIXTURES.glob("*.html")), *SNIPPETS])
@pytest.mark.parametrize("params", NEWSLETTER_PARAMS)
def test_the_text_made_once_from_the_template_matches_the_text_of_each_render(
    source: Path | str, params: dict[str, Any]
) -> None:
    html = source.read_text() if isinstance(source, Path) else source
    template = EmailTemplate.compile("s", html)
    rendered = template.render(contact=CONTACT, params=params, unsubscribe_url=UNSUBSCRIBE)
    assert rendered.text == html_to_text(rendered.html)


def test_real_newsletters_get_their_text_without_a_parse_per_email() -> None:
    template = EmailTemplate.compile("s", (FIXTURES / "newsletter_tables.html").read_text())
    assert template.text_derived


def test_the_cache_compiles_once_per_key_and_forgets_the_oldest() -> None:
    cache = TemplateCache(maxsize=2)
    compiled: list[str] = []

    def compile_(name: str) -> Any:
        return lambda: compiled.append(name) or EmailTemplate.compile(name, "x")

    first = cache.get((1, 1), compile_("a"))
    assert cache.get((1, 1), compile_("a")) is first
    cache.get((2, 1), compile_("b"))
    cache.get((1, 1), compile_("a"))  # refreshes (1, 1)
    cache.get((3, 1), compile_("c"))  # evicts (2, 1)
    cache.get((2, 1), compile_("b"))
    assert compiled == ["a", "b", "c", "b"]
    assert len(cache) == 2
