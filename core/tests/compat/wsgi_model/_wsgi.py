"""Serve KeywordSentiment the way an upstream example's _wsgi.py does (our own script with the
same arguments): `python _wsgi.py --host 127.0.0.1 --port 9090 [--kwargs k=v ...]`."""

import argparse
import json
import logging

from label_studio_ml.api import init_app
from model import KeywordSentiment

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="KeywordSentiment")
    parser.add_argument("-p", "--port", type=int, default=9090)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument(
        "--kwargs",
        "--with",
        nargs="+",
        metavar="KEY=VAL",
        type=lambda kv: kv.split("=", 1),
        help="model init kwargs, checked with --check",
    )
    parser.add_argument("-d", "--debug", action="store_true")
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--basic-auth-user", default=None)
    parser.add_argument("--basic-auth-pass", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level or "INFO")
    kwargs = dict(args.kwargs or [])
    if args.check:
        print("check:", json.dumps(kwargs), KeywordSentiment(**kwargs).get("model_version"))
    app = init_app(
        model_class=KeywordSentiment, basic_auth_user=args.basic_auth_user, basic_auth_pass=args.basic_auth_pass
    )
    app.run(host=args.host, port=args.port, debug=args.debug)
else:
    app = init_app(model_class=KeywordSentiment)
