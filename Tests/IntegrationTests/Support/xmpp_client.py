#!/usr/bin/python3
"""Third-party XMPP client (slixmpp) that drives a Baton agent from integration tests.

  xmpp_client.py --jid J --password P --host H --port N [--insecure] commands TARGET
      prints the target's XEP-0050 commands, one per line: node<TAB>name
  xmpp_client.py ... run TARGET NODE [var=value ...]
      executes the command; if it answers with a form, submits it with the given fields
      (repeat var=... for multi-valued fields); prints the result form as var=value lines
      (one line per value) and notes as "note: text"
  xmpp_client.py ... ping TARGET
      XEP-0199 ping; prints rtt_ms=N

Exit 0 on success; 1 with a one-line error on stderr on failure (IQ error condition
included, an error-type note counts as failure); everything times out after --timeout s.
Uses /usr/bin/python3, which has Debian's python3-slixmpp.
"""
import argparse
import asyncio
import logging
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

COMMANDS_NS = "http://jabber.org/protocol/commands"
DATA_NS = "{jabber:x:data}"


class Failure(Exception):
    pass


def iq_error_text(err: IqError) -> str:
    e = err.iq["error"]
    text = f"{e['type']}/{e['condition']}"
    return text + (f": {e['text']}" if e["text"] else "")


def form_of(command):
    """The <x xmlns='jabber:x:data'/> element inside a <command/>, or None."""
    return command.xml.find(DATA_NS + "x")


def fields_of(form):
    """(var, type, values) per field, read from the XML as sent (slixmpp would turn
    booleans into True/False and its field accessors differ between versions)."""
    for f in form.findall(DATA_NS + "field"):
        values = [v.text or "" for v in f.findall(DATA_NS + "value")]
        yield f.get("var"), f.get("type", "text-single"), values


async def cmd_commands(xmpp, args):
    items = await xmpp["xep_0030"].get_items(jid=args.target, node=COMMANDS_NS,
                                            timeout=args.timeout)
    for jid, node, name in items["disco_items"]["items"]:
        print(f"{node}\t{name or ''}")


async def cmd_run(xmpp, args):
    fields = {}
    for assignment in args.fields:
        var, sep, value = assignment.partition("=")
        if not sep:
            raise Failure(f"field {assignment!r} is not var=value")
        fields.setdefault(var, []).append(value)

    adhoc = xmpp["xep_0050"]
    resp = await adhoc.send_command(args.target, args.node, action="execute",
                                    timeout=args.timeout)
    cmd = resp["command"]
    form = form_of(cmd)
    if cmd["status"] == "executing" and form is not None and form.get("type") == "form":
        # Echo hidden fields and defaults back (XEP-0004), overridden by the caller's values.
        submit = xmpp["xep_0004"].make_form(ftype="submit")
        for var, ftype, values in fields_of(form):
            if ftype == "fixed" or not var:
                continue
            values = fields.pop(var, None) or values
            multi = ftype in ("list-multi", "jid-multi", "text-multi")
            submit.add_field(var=var, ftype=ftype,
                             value=values if multi else (values[0] if values else ""))
        for var, values in fields.items():  # fields the form did not mention
            submit.add_field(var=var, value=values if len(values) > 1 else values[0])
        resp = await adhoc.send_command(args.target, args.node, action="complete",
                                        sessionid=cmd["sessionid"], payload=submit,
                                        timeout=args.timeout)
        cmd = resp["command"]
    if cmd["status"] != "completed":
        raise Failure(f"command ended with status {cmd['status'] or '(none)'}")

    form = form_of(cmd)
    if form is not None:
        for var, _, values in fields_of(form):
            for value in values:
                print(f"{var}={value}")
    errors = []
    for ntype, text in cmd["notes"]:
        print(f"note: {text}")
        if ntype == "error":
            errors.append(text)
    if errors:
        raise Failure("command reported an error: " + "; ".join(errors))


async def cmd_ping(xmpp, args):
    rtt = await xmpp["xep_0199"].ping(jid=args.target, timeout=args.timeout)
    print(f"rtt_ms={rtt * 1000:.3f}")


async def session(args):
    xmpp = slixmpp.ClientXMPP(args.jid, args.password)
    for plugin in ("xep_0030", "xep_0004", "xep_0050", "xep_0199"):
        xmpp.register_plugin(plugin)
    if args.insecure:  # the sandbox's certificate is self-signed
        xmpp.ssl_context.check_hostname = False
        xmpp.ssl_context.verify_mode = ssl.CERT_NONE

    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def fail(reason):
        if not ready.done():
            ready.set_exception(Failure(reason))

    xmpp.add_event_handler("session_start", lambda _: ready.done() or ready.set_result(None))
    xmpp.add_event_handler("failed_all_auth", lambda _: fail("authentication failed"))
    xmpp.add_event_handler("connection_failed", lambda e: fail(f"connection failed: {e}"))
    xmpp.add_event_handler("ssl_invalid_chain", lambda e: fail(f"TLS certificate rejected: {e}"))
    xmpp.add_event_handler("disconnected", lambda r: fail(f"disconnected: {r or 'by server'}"))

    xmpp.connect((args.host, args.port))
    try:
        await ready
        await {"commands": cmd_commands, "run": cmd_run, "ping": cmd_ping}[args.action](xmpp, args)
    finally:
        xmpp.disconnect(wait=0.5)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5222)
    p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--verbose", action="store_true", help="slixmpp debug log on stderr")
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("commands").add_argument("target")
    run = sub.add_parser("run")
    run.add_argument("target")
    run.add_argument("node")
    run.add_argument("fields", nargs="*", metavar="var=value")
    sub.add_parser("ping").add_argument("target")
    args = p.parse_args()

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        asyncio.run(asyncio.wait_for(session(args), args.timeout))
    except asyncio.TimeoutError:
        sys.exit(f"error: timed out after {args.timeout:g} s")
    except IqError as e:
        sys.exit(f"error: {iq_error_text(e)}")
    except IqTimeout:
        sys.exit("error: no reply to IQ (timeout)")
    except Failure as e:
        sys.exit(f"error: {e}")
    except Exception as e:  # keep the one-line contract; --verbose shows more
        sys.exit(f"error: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
