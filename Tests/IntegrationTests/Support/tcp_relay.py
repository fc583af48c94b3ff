#!/usr/bin/env python3
"""A TCP relay for tests: listens on 127.0.0.1:PORT (0: any free port), prints the port on a
line of its own, and relays every connection to 127.0.0.1:TARGET.

Killing it drops every relayed connection at once, as a lost network does: neither end gets a
closing </stream:stream>, so an XEP-0198 server keeps the client's session for resumption.
Started again on the same port, it lets the client reconnect and resume.
"""
import socket
import sys
import threading


def pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    port, target = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", target))
        for source, sink in ((client, server), (server, client)):
            threading.Thread(target=pump, args=(source, sink), daemon=True).start()


if __name__ == "__main__":
    main()
