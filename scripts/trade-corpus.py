#!/usr/bin/env python3
"""Write COUNT varied trade documents as NDJSON to stdout: the training load of
scripts/build-pgo.sh.

The documents have the shape of examples/trade/trade.json but not its values: other ids,
quantities, prices, fees (none to three), tags, instruments given by ISIN instead of a pair,
missing optional members. About one in eight breaks the input schema (a missing member, a
value outside an enum, a negative price, an impossible date, a duplicate tag, a quantity
that is not a decimal), so the rejecting paths are trained too. Deterministic for a seed.

    python3 scripts/trade-corpus.py 2000 --seed 11 > corpus.ndjson
"""
import argparse
import json
import random

PAIRS = ["EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "EURGBP", "NZDUSD"]
DESKS = ["FX-EMEA", "FX-AMER", "FX-APAC", "RATES", "CREDIT"]
TAGS = ["algo", "vwap", "twap", "client-flow", "hedge", "voice", "block", "internal"]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF"]


def day(rng):
    return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def trade(rng, i):
    # Numbers are spliced in as text (@N0@, @N1@, ...) so that their exact digits reach the wire.
    numbers = []

    def number(text):
        numbers.append(text)
        return f"@N{len(numbers) - 1}@"

    doc = {
        "trade_id": f"T-2026-{i:09d}",
        "account": {"id": f"ACC-{rng.randint(10000, 99999)}", "desk": rng.choice(DESKS)},
        "instrument": {"type": "fx_spot", "pair": rng.choice(PAIRS), "isin": None},
        "side": rng.choice(["buy", "sell"]),
        "quantity": f"{rng.randint(1, 900) * 5000}.{rng.randint(0, 99):02d}",
        "price": number(f"{rng.uniform(0.3, 180):.{rng.randint(2, 6)}f}"),
        "currency": rng.choice(CURRENCIES),
        "trade_date": day(rng),
        "fees": [
            {"type": rng.choice(["commission", "exchange", "clearing"]),
             "amount": number(f"{rng.randint(0, 900)}.{rng.randint(0, 99):02d}"),
             "currency": rng.choice(CURRENCIES)}
            for _ in range(rng.randint(0, 3))
        ],
        "tags": rng.sample(TAGS, rng.randint(0, 4)),
        "sequence": 9007199254740993 + 2 * i,
    }
    if rng.random() < 0.7:
        doc["account"]["book"] = f"BK-{rng.randint(1, 40):02d}"
    if rng.random() < 0.2:
        doc["instrument"] = {"type": rng.choice(["equity", "bond"]), "isin": f"US{rng.randint(10**9, 10**10 - 1)}7"}
    if rng.random() < 0.6:
        doc["settlement_date"] = day(rng)
        doc["counterparty"] = {"lei": f"5493{rng.randint(10**11, 10**12 - 1)}R1{rng.randint(10, 99)}", "name": "Example Bank AG"}
        doc["venue"] = rng.choice(["XLON", "XNYS", "XETR"])
        doc["status"] = rng.choice(["executed", "amended"])
        doc["timestamps"] = {"received": "2026-11-27T09:31:02.118Z", "executed": "2026-11-27T09:31:02.120Z"}
    if rng.random() < 0.5:
        doc["notional"] = number(f"{rng.uniform(1e3, 1e8):.2f}")
    if rng.random() < 0.125:
        fault = rng.randrange(6)
        if fault == 0:
            del doc["currency"]
        elif fault == 1:
            doc["side"] = "hold"
        elif fault == 2:
            numbers[0] = "-" + numbers[0]
        elif fault == 3:
            doc["trade_date"] = "2026-13-45"
        elif fault == 4:
            doc["tags"] = ["algo", "algo"]
        else:
            doc["quantity"] = "12e5"
    text = json.dumps(doc, separators=(",", ":"))
    for k, n in enumerate(numbers):
        text = text.replace(f'"@N{k}@"', n)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    for i in range(args.count):
        print(trade(rng, i))


if __name__ == "__main__":
    main()
