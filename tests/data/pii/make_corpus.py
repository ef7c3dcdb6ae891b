"""Writes ``corpus.jsonl``: PII strings and look-alikes for ``tests/unit/test_pii_corpus.py``.

Run: ``.venv/bin/python tests/data/pii/make_corpus.py`` (deterministic: a fixed seed, and the
split is a hash of the text, fixed before any detector was tuned on it).

Each line: ``{"kind": "pii" | "lookalike", "detector", "pii", "text", "split", "listed"}``.
``pii`` is the exact substring that must disappear (for look-alikes: the part that merely looks
like PII); ``detector`` is the expected detector (for look-alikes: the class, e.g. ``isbn``);
``listed`` marks the forms named in the issue ("Step 5", item 2). Values are written the way
people write them (national and international phone formats as used in each country), not
produced by the library the phone detector uses.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("corpus.jsonl")
rng = random.Random(20240515)

# --- PII ----------------------------------------------------------------------------------

PHONES = {
    "US": [
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "415 555 2671",
        "1-800-555-0199",
        "+1 415 555 2671",
        "+1 (212) 555-0147",
        "+1-646-555-0134",
        "1 (800) 555-0123",
        "(917) 555-0182",
        "312-555-0190",
        "+12025550143",
        "1-888-555-0111",
        "(206) 555-0100",
    ],
    "CA": [
        "(416) 555-0134",
        "604-555-0177",
        "+1 514 555 0199",
        "+1 (613) 555-0112",
        "905.555.0166",
    ],
    "GB": [
        "020 7946 0321",
        "020 7946 0958",
        "+44 20 7946 0958",
        "+44 (0)20 7946 0018",
        "0161 496 0123",
        "0113 496 0456",
        "07911 123456",
        "+44 7911 123456",
        "+447911123456",
        "0121 496 0789",
        "(020) 7946 0111",
        "+44 161 496 0000",
    ],
    "DE": [
        "030 12345678",
        "030 901820",
        "+49 30 12345678",
        "+49 (0)30 1234567",
        "0170 1234567",
        "+49 170 1234567",
        "089 12345678",
        "040/12345678",
        "0221 4567890",
        "+4917012345678",
        "0151 23456789",
        "(089) 1234567",
        "+49 89 1234 5678",
        "069 13579246",
    ],
    "FR": [
        "01 23 45 67 89",
        "01.23.45.67.89",
        "06 12 34 56 78",
        "+33 1 23 45 67 89",
        "+33 6 12 34 56 78",
        "+33.1.23.45.67.89",
        "04 72 10 30 30",
        "+33 (0)1 42 68 53 00",
        "07 81 23 45 67",
        "05-56-12-34-56",
    ],
    "JP": [
        "03-1234-5678",
        "06-6123-4567",
        "090-1234-5678",
        "+81 3-1234-5678",
        "+81 90 1234 5678",
        "045-123-4567",
        "(03) 1234-5678",
        "080-9876-5432",
        "+81-3-5555-1234",
    ],
    "AU": [
        "(02) 9876 5432",
        "02 9876 5432",
        "0412 345 678",
        "+61 2 9876 5432",
        "+61 412 345 678",
        "(03) 9123 4567",
        "08 8123 4567",
        "0498 765 432",
        "+61 (0)2 9876 5432",
    ],
    "IN": [
        "98765 43210",
        "+91 98765 43210",
        "+91-98765-43210",
        "022 2345 6789",
        "011 2345 6789",
        "080 2345 6789",
        "+91 22 2345 6789",
        "+919876543210",
    ],
    "BR": [
        "(11) 98765-4321",
        "(21) 3456-7890",
        "+55 11 98765-4321",
        "+55 (11) 98765-4321",
        "(11) 2345-6789",
        "+55 21 3456 7890",
        "(31) 99876-5432",
    ],
    "ES": [
        "91 123 45 67",
        "612 345 678",
        "+34 612 345 678",
        "+34 91 123 45 67",
        "934 567 890",
        "+34 934 56 78 90",
        "655 12 34 56",
    ],
    "IT": [
        "06 1234 5678",
        "02 1234 5678",
        "+39 06 1234 5678",
        "+39 312 345 6789",
        "347 123 4567",
        "+39 02 1234 5678",
        "055 123 4567",
        "333 123 4567",
    ],
    "NL": [
        "020 123 4567",
        "06-12345678",
        "+31 20 123 4567",
        "+31 6 12345678",
        "010 123 4567",
        "06 1234 5678",
        "+31 (0)20 123 4567",
    ],
    "MX": ["55 1234 5678", "+52 55 1234 5678", "+52 81 1234 5678", "33 1234 5678"],
    "CH": ["044 668 18 00", "+41 44 668 18 00", "079 123 45 67", "+41 79 123 45 67"],
    "SE": ["08-123 456 78", "+46 8 123 456 78", "070-123 45 67", "+46 70 123 45 67"],
    "IE": ["01 234 5678", "+353 1 234 5678", "087 123 4567", "+353 87 123 4567"],
}
PHONE_SENTENCES = [
    "You can reach me at {} after 5pm.",
    "My number is {}, call anytime.",
    "Contact: {}",
    "The bot read out my phone ({}) in the answer!",
    "please call {} to follow up",
    "tel. {} / ask for Sam",
    "Il m'a donné le numéro {} sans raison.",
    "Rückruf bitte unter {} danke",
]

EMAILS = [
    "jane.doe@example.com",
    "JANE_DOE+tag@mail.example.co.uk",
    "ops-team@intra.example.org",
    '"john doe"@example.com',
    "admin@[IPv6:2001:db8::7]",
    "root@[192.0.2.10]",
    "first.last+newsletter@sub.domain.example.io",
    "JOHN.SMITH@EXAMPLE.COM",
    "a.b-c_d@ex-ample.net",
    "user123@mail.example.de",
    "x@example.fr",
    "support+ticket-4471@help.example.com",
    '"very.unusual.@.unusual.com"@example.com',
    "jürgen@bücher.de",
    "m.rossi@posta.example.it",
    "tanaka.taro@example.co.jp",
    "priya.sharma@example.in",
    "joao.silva@example.com.br",
    "user%relay@example.org",
    "noreply@notifications.eu-west-1.example.com",
    "postmaster@[198.51.100.7]",
    "ceo@ExampleCorp.COM",
    "o'brien@example.ie",
    '"quoted\\"escape"@example.com',
    "info@münchen.example",
    "dev+ci.build@git.example.dev",
    "a1b2c3@example.museum",
    "sales.emea@eu.example.co.uk",
    "firstname-lastname@example.nl",
    "bob@[IPv6:fe80::1]",
    "hr.team@corp.example.com.au",
    "Anna.Svensson@example.se",
]
EMAIL_SENTENCES = [
    "write to {} today",
    "my email is {} pls don't share",
    "Sent from {}",
    "<{}>",
    "cc: {}; thanks",
    "The model echoed my address ({}) back.",
]

BRANDS = [  # (prefix, length, grouping)
    ("4", 16, (4, 4, 4, 4)),
    ("4", 13, (4, 4, 5)),
    ("51", 16, (4, 4, 4, 4)),
    ("55", 16, (4, 4, 4, 4)),
    ("2221", 16, (4, 4, 4, 4)),
    ("2720", 16, (4, 4, 4, 4)),
    ("34", 15, (4, 6, 5)),
    ("37", 15, (4, 6, 5)),
    ("6011", 16, (4, 4, 4, 4)),
    ("65", 16, (4, 4, 4, 4)),
    ("36", 14, (4, 6, 4)),
    ("3528", 16, (4, 4, 4, 4)),
    ("62", 16, (4, 4, 4, 4)),
    ("4", 19, (4, 4, 4, 4, 3)),
]
KNOWN_CARDS = [
    "4111 1111-1111 1111",
    "5555.5555.5555.4444",
    "4111111111111111",
    "4111-1111-1111-1111",
    "5500 0000 0000 0004",
    "3782 822463 10005",
    "6011000990139424",
    "3530 1113 3330 0000",
    "3056 9309 0259 04",
    "4012 8888 8888 1881",
    "5105-1051-0510-5100",
    "6011 1111 1111 1117",
]
CARD_SENTENCES = [
    "card {} exp 12/27",
    "I paid with {} and it was charged twice",
    "cc#: {}",
    "my visa is {}",
    "Kartennummer {} bitte löschen",
    "use {} for the renewal",
]


def luhn_digit(partial: str) -> str:
    total = 0
    for i, c in enumerate(reversed(partial)):
        v = int(c)
        if i % 2 == 0:
            v = v * 2 - 9 if v > 4 else v * 2
        total += v
    return str((10 - total % 10) % 10)


def card_number(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def grouped(number: str, grouping: tuple[int, ...], seps: list[str]) -> str:
    parts, i = [], 0
    for g in grouping:
        parts.append(number[i : i + g])
        i += g
    out = parts[0]
    for k, part in enumerate(parts[1:]):
        out += seps[k % len(seps)] + part
    return out


SEP_STYLES = [[" "], ["-"], ["."], [""], [" ", "-", " "], ["-", " ", "-"], [".", " ", "."]]

SSN_FORMATTED = [
    "123-45-6789",
    "123 45 6789",
    "078-05-1120",
    "219-09-9999",
    "321-54-9876",
    "555-12-3456",
    "001-01-0001",
    "665-43-2109",
    "457 55 5462",
    "772-10-4421",
    "234-56-7890",
    "899-11-2233",
]
SSN_BARE = [
    "123456789",
    "078051120",
    "321549876",
    "457555462",
    "234567890",
    "512345678",
    "698765432",
    "143256789",
    "301120045",
    "876543219",
    "222334444",
    "404221188",
]
SSN_FORMATTED_SENTENCES = [
    "ssn {}",
    "My SSN is {}.",
    "it printed {} in the reply",
    "social security number {} — remove it",
]
SSN_BARE_SENTENCES = [
    "My SSN is {}.",
    "SSN: {}",
    "social security number {} pls delete",
    "Soc. Sec. No. {}",
    "ssn#{} was in the prompt",
    "my soc sec {} leaked",
    "Social Security: {}",
    "the SSN field had {}",
]

IPS = [
    "192.168.1.10",
    "10.0.0.1",
    "192.168.001.010",
    "010.000.000.001",
    "172.16.254.1",
    "8.8.8.8",
    "203.0.113.45",
    "198.51.100.255",
    "127.0.0.1",
    "100.64.0.7",
    "2001:db8::8a2e:370:7334",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "::1",
    "fe80::1",
    "::ffff:192.168.1.1",
    "2001:db8::",
    "fd00:1234:5678::abcd",
    "2001:db8:0:0:0:0:2:1",
    "64:ff9b::192.0.2.33",
    "FE80::0202:B3FF:FE1E:8329",
    "2001:DB8:ACAD:1::1",
    "::ffff:10.0.0.5",
    "192.000.002.001",
    "255.255.255.0",
    "10.10.10.010",
]
IP_SENTENCES = [
    "from {}, retried",
    "client ip {} blocked",
    "server at {} timed out",
    "My home IP is {} btw",
    "connect to [{}] failed",
    "addr={} port 443",
]

# --- look-alikes --------------------------------------------------------------------------


def digits(n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def luhn_failing(prefix: str, length: int) -> str:
    good = card_number(prefix, length)
    return good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)


def lookalikes() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    add = out.append
    for _ in range(12):
        add(
            ("order_id", f"ORD-{digits(4)}-{digits(4)}-{digits(4)}-{digits(4)}", "order {} shipped")
        )
        add(("order_id", f"#{digits(8, '123456789')}", "order {} is late"))
    for _ in range(6):
        add(("order_id", digits(10, "123456789"), "order number {} never arrived"))
        add(("order_id", f"A{digits(9)}", "ticket {} closed"))
    for _ in range(10):
        ups = f"1Z{rng.choice(['999AA1', '0X5W87', 'A12B34'])}{digits(10)}"
        add(("tracking_ups", ups, "UPS tracking {} says delivered"))
        add(
            (
                "tracking_ups",
                f"{ups[:2]} {ups[2:5]} {ups[5:8]} {ups[8:10]} {ups[10:14]} {ups[14:]}",
                "track {} please",
            )
        )
        add(("tracking_fedex", digits(12, "1234567"), "FedEx {} stuck in Memphis"))
        f12 = digits(12, "1234567")
        add(("tracking_fedex", f"{f12[:4]} {f12[4:8]} {f12[8:]}", "fedex tracking {}"))
        add(("tracking_fedex", digits(15, "0123456789"), "FedEx ground {} late"))
        usps = "9400" + digits(18)
        add(("tracking_usps", usps, "USPS {} not moving"))
        add(
            (
                "tracking_usps",
                " ".join(usps[i : i + 4] for i in range(0, 22, 4)),
                "usps tracking: {}",
            )
        )
        add(("tracking_usps", "9205" + digits(16), "USPS label {}"))
    for isbn in [
        "978-3-16-148410-0",
        "9780306406157",
        "0-306-40615-2",
        "978-1-4028-9462-6",
        "978 0 13 110362 7",
        "ISBN-13: 978-0-596-52068-7",
        "0-19-852663-6",
        "978-1-86197-876-9",
        "9781492056355",
        "1-56619-909-3",
    ]:
        add(("isbn", isbn, "see {} for details"))
    for _ in range(10):
        sec = rng.randint(1_500_000_000, 1_800_000_000)
        add(("timestamp", str(sec), "epoch {} in the log"))
        add(("timestamp", f"{sec}{rng.randint(0, 999):03d}", "ts_ms={} from client"))
        y, mo, d = rng.randint(2019, 2026), rng.randint(1, 12), rng.randint(1, 28)
        h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
        add(("timestamp", f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z", "at {} it failed"))
        add(
            (
                "timestamp",
                f"{y}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}.{rng.randint(0, 999):03d}",
                "logged {} UTC",
            )
        )
        add(("timestamp", f"{d:02d}/{mo:02d}/{y} {h:02d}:{mi:02d}", "on {} it hung"))
        add(("timestamp", f"{y}{mo:02d}{d:02d}T{h:02d}{mi:02d}{s:02d}Z", "snapshot {}"))
        add(
            (
                "timestamp",
                f"{y}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}+{rng.randint(0, 11):02d}:00",
                "created {}",
            )
        )
    for _ in range(8):
        add(
            (
                "price",
                f"${rng.randint(1, 9)},{rng.randint(0, 999):03d}.{rng.randint(0, 99):02d}",
                "costs {} per seat",
            )
        )
        add(
            (
                "price",
                f"EUR {rng.randint(1, 99)}.{rng.randint(0, 999):03d},{rng.randint(0, 99):02d}",
                "quoted {} for the year",
            )
        )
        add(
            (
                "price",
                f"{rng.randint(1, 99)} {rng.randint(0, 999):03d} {rng.randint(0, 999):03d},"
                f"{rng.randint(0, 99):02d} €",
                "le budget est {}",
            )
        )
        add(
            (
                "price",
                f"¥{rng.randint(1, 999)},{rng.randint(0, 999):03d},{rng.randint(0, 999):03d}",
                "revenue {}",
            )
        )
    for _ in range(8):
        prefix, length, grouping = rng.choice(BRANDS)
        bad = luhn_failing(prefix, length)
        add(("luhn_failing", grouped(bad, grouping, rng.choice(SEP_STYLES)), "order {} failed"))
        add(("luhn_failing", luhn_failing(prefix, length), "ref {}"))
    for _ in range(10):
        mac = [f"{rng.randrange(256):02x}" for _ in range(6)]
        add(("mac", ":".join(mac), "mac {} on eth0"))
        add(("mac", "-".join(m.upper() for m in mac), "adapter {}"))
        add(("mac", "-".join(f"{rng.randrange(100):02d}" for _ in range(6)), "device {}"))
    for _ in range(10):
        h = "".join(rng.choice("0123456789abcdef") for _ in range(32))
        add(("uuid", f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}", "request {} failed"))
        add(("hash", "".join(rng.choice("0123456789abcdef") for _ in range(40)), "commit {}"))
        add(
            (
                "hash",
                "sha256:" + "".join(rng.choice("0123456789abcdef") for _ in range(64)),
                "image {}",
            )
        )
    for version in [
        "1.0.0+20130313144700",
        "v2.14.3-rc.1",
        "10.0.19045.3803",
        "1.2.3-beta+exp.sha.5114f85",
        "Python 3.11.4",
        "node 20.11.1",
        "build 2024.01.15.1",
        "1.0.0-alpha+001",
        "2.0.0+build.20240115123456",
        "v1.2.3+sha.0a1b2c3",
        "6.1.0-1034-azure",
        "4.19.0-26-amd64",
        "17.0.2+8-86",
        "1.2.3.4.5",
        "2024.1.15",
        "v10.2",
    ]:
        add(("version", version, "upgraded to {} yesterday"))
    for duration in [
        "took 1234567 ms",
        "12:34:56.789",
        "P3Y6M4DT12H30M5S",
        "1h 23m 45s",
        "uptime 123 days, 04:05:06",
        "latency 12345678 ns",
        "00:00:12.345678",
        "elapsed 3600000ms",
        "PT36H",
        "2d 03:04:05",
    ]:
        add(
            ("duration", duration, "it {} to answer" if duration.startswith("took") else "{} total")
        )
    for other in [
        "room 101, 12345 units, 555-1234",
        "4155552671",
        "+1.5 and +12 345",
        "999.1.1.1 and 256.0.0.1",
        "std::vector, 16:9, Foo::Bar",
        "a :: b",
        "user@localhost",
        "000-12-3456",
        "666-12-3456",
        "912-12-3456",
        "123-00-4567",
        "123-45-0000",
        "ratio 16:9 at 1920x1080",
        "page 12 of 345",
        "zip 94103-1234",
        "call me maybe",
        "5 stars, 10/10",
        "123456789",
        "lot 20240115-0042",
        "IBAN-like DE00 0000 0000 0000 0000 00",
    ]:
        add(("misc", other, "{}"))
    return out


def split_of(text: str) -> str:
    return "heldout" if hashlib.sha256(text.encode()).digest()[0] % 2 else "tune"


LISTED = {
    "020 7946 0321",
    "030 12345678",
    "01 23 45 67 89",
    "03-1234-5678",
    "(02) 9876 5432",
    "4111 1111-1111 1111",
    "5555.5555.5555.4444",
    '"john doe"@example.com',
    "admin@[IPv6:2001:db8::7]",
    "root@[192.0.2.10]",
    "192.168.001.010",
    "1.0.0+20130313144700",
}


def main() -> None:
    rows = []

    def pii(detector: str, value: str, sentence: str, country: str = "") -> None:
        text = sentence.format(value)
        rows.append(
            {
                "kind": "pii",
                "detector": detector,
                "pii": value,
                "text": text,
                "country": country,
                "split": split_of(text),
                "listed": value in LISTED,
            }
        )

    n = 0
    for country, numbers in PHONES.items():
        for number in numbers:
            pii("phone", number, PHONE_SENTENCES[n % len(PHONE_SENTENCES)], country)
            n += 1
    for i, email in enumerate(EMAILS):
        pii("email", email, EMAIL_SENTENCES[i % len(EMAIL_SENTENCES)])
        if i % 3 == 0:
            pii("email", email, EMAIL_SENTENCES[(i + 1) % len(EMAIL_SENTENCES)])
    for i, card in enumerate(KNOWN_CARDS):
        pii("card", card, CARD_SENTENCES[i % len(CARD_SENTENCES)])
    for i in range(50):
        prefix, length, grouping = BRANDS[i % len(BRANDS)]
        seps = SEP_STYLES[i % len(SEP_STYLES)]
        pii(
            "card",
            grouped(card_number(prefix, length), grouping, seps),
            CARD_SENTENCES[i % len(CARD_SENTENCES)],
        )
    for i, ssn in enumerate(SSN_FORMATTED):
        pii("ssn", ssn, SSN_FORMATTED_SENTENCES[i % len(SSN_FORMATTED_SENTENCES)], "US")
    for i, ssn in enumerate(SSN_BARE):
        pii("ssn", ssn, SSN_BARE_SENTENCES[i % len(SSN_BARE_SENTENCES)], "US")
    for i, ip in enumerate(IPS):
        pii("ip", ip, IP_SENTENCES[i % len(IP_SENTENCES)])
        pii("ip", ip, IP_SENTENCES[(i + 3) % len(IP_SENTENCES)])
    for cls, value, sentence in lookalikes():
        text = sentence.format(value)
        rows.append(
            {
                "kind": "lookalike",
                "detector": cls,
                "pii": value,
                "text": text,
                "country": "",
                "split": split_of(text),
                "listed": value in LISTED,
            }
        )
    seen = set()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            if row["text"] in seen:
                continue
            seen.add(row["text"])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
