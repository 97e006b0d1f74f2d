"""Verify webhook deliveries with the Standard Webhooks reference library (standardwebhooks on PyPI).

Reads a JSON list of cases from the file named on the command line, each
  {"secret": "whsec_...", "headers": {"webhook-id": ..., "webhook-timestamp": ..., "webhook-signature": ...},
   "body": "<the raw body>", "expect": "valid" | "invalid"}
and exits 0 when every case verifies as expected, 1 (naming the cases) otherwise.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def verifies(case):
    try:
        Webhook(case["secret"]).verify(case["body"], case["headers"])
        return "valid"
    except WebhookVerificationError:
        return "invalid"


def main():
    cases = json.load(open(sys.argv[1]))
    wrong = [(i, c["expect"], verifies(c)) for i, c in enumerate(cases) if verifies(c) != c["expect"]]
    for i, expected, got in wrong:
        print(f"case {i}: expected {expected}, the reference library says {got}")
    print(f"{len(cases) - len(wrong)} of {len(cases)} cases as expected")
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
