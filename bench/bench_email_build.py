"""Personalised email per recipient: render + track links + build bytes, against EmailMessage.

For each of N recipients (a first name attribute and an order id param, in the subject and the
body), Hookhub's path renders the template (text part derived from the HTML), rewrites the links
and adds the open pixel with signed tracking tokens, and builds the message bytes with
``hookhub.email.mime``. The baseline, in the same run and on the same rendered content, builds the
message with the standard library's ``EmailMessage`` (``as_bytes`` with the SMTP policy), which is
what a sender reaching for ``send_message`` pays. Both run in this process, alternated run by run;
figures are CPU time (``time.process_time``), so a busy machine slows both sides alike.

    .venv/bin/python bench/bench_email_build.py [--recipients 20000] [--runs 3]
        [--template order|newsletter]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address as StdAddress
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from common import REPO_DIR, machine_info, median, print_machine

from hookhub.core.tracking import TrackingSigner
from hookhub.email.links import track_links
from hookhub.email.mime import Address, OutgoingMessage, build_message, make_message_id
from hookhub.email.templates import EmailTemplate, RenderedEmail

ORDER = (
    "Your order {{ params.order_id }}, {{ contact.FIRSTNAME }}",
    """<html><body><h1>Thank you, {{ contact.FIRSTNAME }}!</h1>
<p>Your order <b>{{ params.order_id }}</b> is confirmed and will ship within two days.</p>
<p>Track it at <a href="https://shop.example.com/orders/{{ params.order_id }}">your account</a>.</p>
<p>Questions? Write to <a href="mailto:help@example.com">help@example.com</a>.</p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>""",
)
NEWSLETTER_FILE = REPO_DIR / "tests" / "fixtures" / "email" / "newsletter_tables.html"
PUBLIC = "https://hooks.example.com"
SENDER = Address("news@example.com", "Example Shop")
DATE = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def template_source(name: str) -> tuple[str, str]:
    if name == "order":
        return ORDER
    return ("Spring sale for you, {{ contact.FIRSTNAME }} ({{ params.code }})",
            Path(NEWSLETTER_FILE).read_text())  # fmt: skip


def recipients(count: int) -> list[tuple[int, dict[str, object], dict[str, object]]]:
    people = []
    for i in range(count):
        attributes = {"FIRSTNAME": f"Name{i}", "PLAN": "pro"}
        contact = {"id": i, "email": f"person{i}@example.org", "attributes": attributes}
        product = {
            "url": f"https://shop.example.com/p/{i % 10}",
            "name": "Rose",
            "image": "https://cdn.example.com/1.jpg",
            "price": "9.90",
        }
        params = {
            "order_id": f"A-{100000 + i}",
            "code": f"CODE{i % 97}",
            "until": "Sunday",
            "products": [product],
        }
        people.append((i + 1, contact, params))
    return people


def hookhub_message(
    template: EmailTemplate, signer: TrackingSigner, email_id: int, contact: dict, params: dict
) -> bytes:  # type: ignore[type-arg]
    unsubscribe = f"{PUBLIC}/t/u/{signer.token('u', email_id)}"
    rendered = template.render(contact=contact, params=params, unsubscribe_url=unsubscribe)
    tracked = track_links(
        rendered.html,
        click_url=lambda link: f"{PUBLIC}/t/c/{signer.token('c', email_id, link)}",
        open_pixel_url=f"{PUBLIC}/t/o/{signer.token('o', email_id)}",
        unsubscribe_url=unsubscribe,
    )
    return build_message(
        OutgoingMessage(
            message_id=make_message_id(email_id, "mail.example.com", "b3nch"),
            sender=SENDER,
            to=Address(str(contact["email"]), str(contact["attributes"]["FIRSTNAME"])),  # type: ignore[index]
            subject=rendered.subject,
            html=tracked.html,
            text=rendered.text,
            date=DATE,
            list_unsubscribe=unsubscribe,
        )
    )


def stdlib_message(rendered: RenderedEmail, email_id: int, contact: dict) -> bytes:  # type: ignore[type-arg]
    message = EmailMessage()
    message["From"] = StdAddress("Example Shop", "news", "example.com")
    message["To"] = StdAddress(
        str(contact["attributes"]["FIRSTNAME"]), addr_spec=str(contact["email"])
    )
    message["Subject"] = rendered.subject
    message["Date"] = DATE
    message["Message-ID"] = f"<{email_id}.b3nch@mail.example.com>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message.as_bytes(policy=SMTP)


def timed(work: Callable[[], int]) -> tuple[float, int]:
    start = time.process_time()
    size = work()
    return time.process_time() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--template", choices=("order", "newsletter"), default="order")
    args = parser.parse_args()
    print_machine(machine_info(None))
    subject, html = template_source(args.template)
    template = EmailTemplate.compile(subject, html)
    signer = TrackingSigner(b"bench-only tracking key, 32 byte")
    people = recipients(args.recipients)
    print(f"template: {args.template} ({len(html)} characters of HTML, text derived: "
          f"{template.text_derived}); {args.recipients} recipients; {args.runs} runs")  # fmt: skip

    def hookhub_all() -> int:
        return sum(len(hookhub_message(template, signer, i, c, p)) for i, c, p in people)

    def render_only() -> int:
        return sum(
            len(template.render(contact=c, params=p, unsubscribe_url="https://u/x").html)
            for _, c, p in people
        )

    def stdlib_all() -> int:
        total = 0
        for i, c, p in people:
            rendered = template.render(contact=c, params=p, unsubscribe_url="https://u/x")
            total += len(stdlib_message(rendered, i, c))
        return total

    results: dict[str, list[float]] = {"hookhub": [], "render": [], "stdlib": []}
    for run in range(args.runs):
        order = [("hookhub", hookhub_all), ("render", render_only), ("stdlib", stdlib_all)]
        if run % 2:
            order.reverse()
        for name, work in order:
            seconds, size = timed(work)
            rate = args.recipients / seconds
            results[name].append(rate)
            each_us = seconds * 1e6 / args.recipients
            print(
                f"run {run + 1} {name:<8} {rate:>9,.0f} messages/s CPU"
                f" ({each_us:.1f} us each, {size / args.recipients:,.0f} B)"
            )
    hookhub, render, stdlib = (median(results[k]) for k in ("hookhub", "render", "stdlib"))
    ratios = [h / s for h, s in zip(results["hookhub"], results["stdlib"], strict=True)]
    print(f"median: hookhub render+track+build {hookhub:,.0f}/s; render alone {render:,.0f}/s;"
          f" render + EmailMessage build {stdlib:,.0f}/s")  # fmt: skip
    print(f"ratio hookhub / EmailMessage: {median(ratios):.2f}x "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")  # fmt: skip


if __name__ == "__main__":
    main()
