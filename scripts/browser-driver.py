#!/usr/bin/python3
"""Drives headless Chromium over the DevTools protocol for the live-view test (Python 3 stdlib only).

    /usr/bin/python3 scripts/browser-driver.py [CHROMIUM]

Starts Chromium (default /usr/bin/chromium) with --remote-debugging-pipe: the protocol runs over
two pipes (descriptors 3 and 4 in the browser, NUL-separated JSON), so no port is opened and no
other program can talk to the browser. Every request the page makes is recorded from
Network.requestWillBeSent; host names other than 127.0.0.1 and localhost are made unresolvable
(--host-resolver-rules), so an offline machine stays offline, and the record still shows any
attempt. Then reads commands, one a line, on standard input and answers each with one JSON line
on standard output:

    open URL                    navigate, wait for the load event        -> {"ok": true}
    eval JS                     evaluate (promises awaited)              -> {"value": ...}
    screenshot PATH             the viewport as PNG at PATH              -> {"ok": true}
    pixels PATH X Y W H RRGGBB  statistics of that rectangle of the PNG  -> {"pixels", "distinct", "stddev", "near"}
                                ("near": pixels within 100 of the colour RRGGBB, Euclidean in RGB)
    requests                    every URL requested so far               -> {"urls": [...]}
    quit
"""
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import tempfile
import time
import zlib


class Browser:
    def __init__(self, chromium):
        self.profile = tempfile.mkdtemp(prefix="netnet-chromium-")
        # Moved above 9 first, so that putting them at 3 and 4 in the child overwrites nothing.
        to_browser_r, self.to_browser = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in os.pipe())
        self.from_browser, from_browser_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in os.pipe())
        arguments = [chromium, "--headless=new", "--disable-gpu", "--no-sandbox", "--remote-debugging-pipe",
                     "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                     "--window-size=1280,900", f"--user-data-dir={self.profile}", "about:blank"]

        def descriptors():
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(arguments, pass_fds=(3, 4), preexec_fn=descriptors,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.urls = []
        self.session = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method, params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        return self.next_id

    def receive(self, timeout):
        """One message from the browser, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "method" in message:
            self.note(message)
        return message

    def note(self, event):
        if event["method"] == "Network.requestWillBeSent":
            self.urls.append(event["params"]["request"]["url"])
        self.events.append(event["method"])

    def call(self, method, params=None, timeout=30):
        wanted = self.send(method, params)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            if message and message.get("id") == wanted:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
        raise RuntimeError(f"{method}: no answer in {timeout} s")

    def open(self, url):
        self.events = []
        self.call("Page.navigate", {"url": url})
        deadline = time.monotonic() + 30
        while "Page.loadEventFired" not in self.events and time.monotonic() < deadline:
            self.receive(0.2)
        return {"ok": "Page.loadEventFired" in self.events}

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            return {"error": result["exceptionDetails"].get("text", "exception") + ": "
                    + str(result["exceptionDetails"].get("exception", {}).get("description", ""))}
        return {"value": result["result"].get("value")}

    def screenshot(self, path):
        import base64
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))
        return {"ok": True}

    def pump(self):
        """Takes the events that arrived meanwhile (the request record stays current)."""
        while self.receive(0) is not None:
            pass

    def close(self):
        try:
            self.send("Browser.close", {})
            self.process.wait(5)
        except Exception:
            self.process.kill()
        subprocess.run(["rm", "-rf", self.profile])


def read_png(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB or RGBA PNG, non-interlaced."""
    with open(path, "rb") as file:
        data = file.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat = 8, b""
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG"
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(line)
        previous = line
    return width, height, rows, channels


def pixels(path, x, y, w, h, colour):
    width, height, rows, channels = read_png(path)
    target = (int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16))
    seen, near, total, sum1, sum2 = set(), 0, 0, 0.0, 0.0
    for row in range(max(0, y), min(height, y + h)):
        line = rows[row]
        for column in range(max(0, x), min(width, x + w)):
            r, g, b = line[column * channels:column * channels + 3]
            seen.add((r >> 3, g >> 3, b >> 3))
            grey = (r + g + b) / 3
            sum1 += grey
            sum2 += grey * grey
            total += 1
            if (r - target[0]) ** 2 + (g - target[1]) ** 2 + (b - target[2]) ** 2 <= 100 ** 2:
                near += 1
    mean = sum1 / total if total else 0
    stddev = max(0.0, sum2 / total - mean * mean) ** 0.5 if total else 0
    return {"pixels": total, "distinct": len(seen), "stddev": round(stddev, 2), "near": near}


def main():
    browser = Browser(sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/chromium")
    try:
        for line in sys.stdin:
            command, _, argument = line.rstrip("\n").partition(" ")
            try:
                browser.pump()
                if command == "open":
                    answer = browser.open(argument)
                elif command == "eval":
                    answer = browser.evaluate(argument)
                elif command == "screenshot":
                    answer = browser.screenshot(argument)
                elif command == "pixels":
                    path, x, y, w, h, colour = argument.split(" ")
                    answer = pixels(path, int(x), int(y), int(w), int(h), colour)
                elif command == "requests":
                    answer = {"urls": browser.urls}
                elif command == "quit":
                    break
                else:
                    answer = {"error": f"unknown command {command!r}"}
            except Exception as error:  # reported to the test, which fails on it
                answer = {"error": f"{type(error).__name__}: {error}"}
            print(json.dumps(answer), flush=True)
    finally:
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
