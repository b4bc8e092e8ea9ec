"""A real SMTP submission server on loopback for the SMTP adapter's tests.

Built on aiosmtpd (Debian: python3-aiosmtpd; PyPI: aiosmtpd). The Rust test
harness (smtp_support/server.rs) starts it and reads one line from stdout,
``READY <port>``; it stops when its stdin closes (the harness dropped it),
when it is killed, or after --max-seconds, whichever comes first.

Modes (--tls): ``none`` (plain text, AUTH allowed without TLS: loopback only),
``starttls`` (STARTTLS offered and required before AUTH and MAIL), and
``implicit`` (TLS from the first byte). AUTH PLAIN and LOGIN against one fixed
user and password; --auth-mechanisms limits which are offered.

Scripted answers, chosen by the recipient's local part so one server covers
every classification test:
  defer451-...  -> 451 4.3.0 at RCPT      defer421-... -> 421 4.7.0 at RCPT
  full452-...   -> 452 4.2.2 at RCPT      reject550-... -> 550 5.1.1 at RCPT
  toobig552-... -> 552 5.3.4 after DATA   policy554-... -> 554 5.7.1 after DATA
  slow-...      -> DATA answered only after --slow-seconds
Everything else is accepted with ``250 2.0.0 Ok: queued as <QUEUEID>``.

Each accepted message is written to --maildir as <n>.json: the envelope, the
authenticated login and mechanism, the raw message, its decoded headers, and
every MIME leaf part (content type, filename, decoded bytes in base64), and
the client's port (equal ports: one pooled connection carried both).
"""

import argparse
import asyncio
import base64
import email
import email.policy
import itertools
import json
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# aiosmtpd warns when AUTH is allowed without TLS; that is the point of the
# plain (loopback) mode, and the warning would only clutter the test output.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

SCRIPTED_RCPT = {
    "defer451": "451 4.3.0 Temporary lookup failure, try again later",
    "defer421": "421 4.7.0 Service not available, closing transmission channel",
    "full452": "452 4.2.2 Mailbox full",
    "reject550": "550 5.1.1 Recipient address rejected: User unknown",
}
SCRIPTED_DATA = {
    "toobig552": "552 5.3.4 Message size exceeds fixed limit",
    "policy554": "554 5.7.1 Message rejected: content policy",
}


class Handler:
    def __init__(self, maildir, slow_seconds):
        self.maildir = maildir
        self.slow_seconds = slow_seconds
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = SCRIPTED_RCPT.get(local_tag(address))
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        tags = {local_tag(a) for a in envelope.rcpt_tos}
        if "slow" in tags:
            await asyncio.sleep(self.slow_seconds)
        for tag, answer in SCRIPTED_DATA.items():
            if tag in tags:
                return answer
        n = next(self.counter)
        queue_id = f"Q{os.getpid()}N{n}"
        tls = server.transport.get_extra_info("ssl_object") is not None
        record = describe(envelope, session, queue_id, tls)
        path = os.path.join(self.maildir, f"{n:04}.json")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, path)  # readers never see a half-written file
        return f"250 2.0.0 Ok: queued as {queue_id}"


def local_tag(address):
    local = address.split("@", 1)[0].lower()
    return local.split("-", 1)[0]


def describe(envelope, session, queue_id, tls):
    raw = envelope.original_content or envelope.content
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        parts.append({
            "content_type": part.get_content_type(),
            "filename": part.get_filename(),
            "disposition": part.get_content_disposition(),
            "content_base64": base64.b64encode(payload).decode("ascii"),
        })
    auth = session.auth_data if isinstance(session.auth_data, dict) else {}
    return {
        "queue_id": queue_id,
        "mail_from": envelope.mail_from,
        "rcpt_tos": envelope.rcpt_tos,
        "auth_login": auth.get("login"),
        "auth_mechanism": auth.get("mechanism"),
        "tls": tls,
        "peer_port": session.peer[1],
        "content_type": message.get_content_type(),
        "headers": [[name, str(value)] for name, value in message.items()],
        "parts": parts,
        "raw": raw.decode("utf-8", errors="replace"),
    }


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login == user.encode() and auth_data.password == password.encode()
        if not ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(
            success=True,
            auth_data={"login": auth_data.login.decode(), "mechanism": mechanism},
        )
    return check


def tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = Handler(args.maildir, args.slow_seconds)
    context = tls_context(args.cert, args.key) if args.tls != "none" else None
    excluded = [m for m in ("PLAIN", "LOGIN") if m not in args.auth_mechanisms.split(",")]

    def factory():
        return SMTP(
            handler,
            hostname="smtp.test",
            loop=loop,
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticator(args.user, args.password),
            auth_required=True,
            # STARTTLS: AUTH only once upgraded. Implicit TLS: the socket is
            # TLS already (aiosmtpd only tracks STARTTLS). None: loopback.
            auth_require_tls=args.tls == "starttls",
            auth_exclude_mechanism=excluded,
            timeout=args.max_seconds,
        )

    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=0,
        ssl=context if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)

    stop = asyncio.Event()
    # The harness holds our stdin open; EOF means it is gone.
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
        daemon=True,
    ).start()
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except asyncio.TimeoutError:
        pass
    server.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tls", choices=["none", "starttls", "implicit"], required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--auth-mechanisms", default="PLAIN,LOGIN")
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    if args.tls != "none" and not (args.cert and args.key):
        parser.error("--cert and --key are required with --tls starttls|implicit")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
