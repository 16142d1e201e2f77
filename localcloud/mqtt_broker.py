"""An MQTT broker inside the test process, standing in for IoT Core's message broker.

amqtt is asyncio-based; the broker runs its own event loop in a daemon thread so that
synchronous code (paho clients, pytest, the device simulator) can use it like any broker.
It listens on plain TCP and lets anyone connect: it is for 127.0.0.1 only. IoT Core's
authorisation (X.509 certificates, the device policy) is not emulated. amqtt 0.12.1 loses
acknowledged QoS 1 messages of a client that disconnects right away; `_DrainingBroker` fixes
that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
import uuid
from typing import Any, Self

from amqtt.broker import Broker  # type: ignore[import-untyped]
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from localcloud.iot_rules import IotRulesBridge

logger = logging.getLogger(__name__)

__all__ = ["BrokerStartError", "LocalMqttBroker"]

_NOISY_LOGGERS = ("amqtt", "transitions")


class BrokerStartError(RuntimeError):
    """The embedded broker did not come up (port in use, bad host, amqtt failure)."""


class _DrainingBroker(Broker):  # type: ignore[misc]
    """amqtt's Broker, without losing acknowledged messages when the publisher disconnects.

    amqtt 0.12.1 sends PUBACK as soon as it queues an incoming message, but when the client
    then disconnects it ends that session's loop and never broadcasts what is still queued:
    a device that publishes a burst at QoS 1 and disconnects on the last PUBACK loses some
    of it (about 1 message in 5 in a quick test). This drains the queue first. It overrides and
    calls private methods, which is why amqtt is pinned; tests/integration/test_mqtt_path.py fails
    if this stops working.
    """

    async def _handle_disconnect(self, client_session: Any, handler: Any, disconnect_waiter: Any) -> None:
        queue = client_session.delivered_message_queue
        while not queue.empty():
            delivered = asyncio.get_running_loop().create_future()
            delivered.set_result(queue.get_nowait())
            await self._handle_message_delivery(client_session, handler, delivered)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)


class LocalMqttBroker:
    """An anonymous MQTT 3.1.1 broker on ``host:port`` (port 0 picks a free port).

    Use as a context manager, or call `start` and `stop`. After `start`, `port` is the bound
    port and the broker accepts connections.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._quiet = quiet
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker is not running")
        return self._port

    @property
    def address(self) -> str:
        """``host:port``, as the simulator's ``--broker`` option takes it."""
        return f"{self._host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._port is not None

    def start(self, timeout: float = 10.0) -> Self:
        """Start the broker and return once it accepts TCP connections."""
        if self._thread is not None:
            raise RuntimeError("the broker is already started")
        if self._quiet:
            # amqtt logs every connection and state transition at INFO: keep test output readable.
            for name in _NOISY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        self._ready.clear()
        self._startup_error = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="dxops-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise BrokerStartError(f"the MQTT broker did not start within {timeout}s")
        if self._startup_error is not None:
            error = self._startup_error
            self._join()
            raise BrokerStartError(f"the MQTT broker did not start on {self._host}:{self._requested_port}") from error
        self._wait_accepting(timeout)
        logger.debug("MQTT broker listening on %s", self.address)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect clients, close the listener and end the loop thread; safe to call twice."""
        loop, broker = self._loop, self._broker
        if loop is None or self._thread is None:
            return
        if broker is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
            try:
                future.result(timeout)
            except Exception:  # a failed shutdown must not hide the test's own outcome
                logger.warning("the MQTT broker did not shut down cleanly", exc_info=True)
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        self._join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("the MQTT broker thread did not end within %ss", timeout)
        self._thread = None
        self._loop = None
        self._broker = None
        self._port = None

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._start_broker())
            except BaseException as exc:  # reported to start(), which raises it in the caller's thread
                self._startup_error = exc
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            self._close_loop(loop)

    async def _start_broker(self) -> None:
        bind_host = f"[{self._host}]" if ":" in self._host else self._host
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{bind_host}:{self._requested_port}"}},
            # Only anonymous auth: amqtt's default plugins add $SYS publishing and packet logging.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        broker = _DrainingBroker(config, loop=asyncio.get_running_loop())
        await broker.start()
        self._broker = broker
        self._port = self._bound_port(broker)

    def _bound_port(self, broker: Any) -> int:
        if self._requested_port:
            return self._requested_port
        # amqtt has no public accessor for the listening socket; pinned amqtt==0.12.1 keeps
        # it in Broker._servers[name].instance (an asyncio.Server).
        server = broker._servers["default"].instance
        return int(server.sockets[0].getsockname()[1])

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._handshake(deadline):
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(f"the MQTT broker does not accept MQTT connections on {self.address}")
            time.sleep(0.05)

    def _handshake(self, deadline: float) -> bool:
        # A full MQTT CONNECT/CONNACK, not a bare TCP probe: that proves the broker serves MQTT,
        # and amqtt logs an ERROR for every connection that closes before sending CONNECT.
        probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dxops-probe-{uuid.uuid4().hex[:8]}")
        try:
            probe.connect(self._host, self.port, keepalive=10)
        except OSError:
            return False
        try:
            while not probe.is_connected() and time.monotonic() < deadline:
                probe.loop(timeout=0.05)
            return probe.is_connected()
        finally:
            probe.disconnect()

    @staticmethod
    def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Run the broker in the foreground, e.g. for ``python -m devices.simulator --broker``."""
    parser = argparse.ArgumentParser(
        prog="python -m localcloud.mqtt_broker",
        description="Embedded anonymous MQTT broker for local runs (Ctrl-C stops it).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1883, help="port to bind, 0 for any free port (default 1883)")
    parser.add_argument(
        "--rule-sql", help="also apply this IoT rule and report each output's device and reading count (no payloads)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly under process managers too
    try:
        broker = LocalMqttBroker(args.host, args.port).start()
    except BrokerStartError as exc:
        print(f"error: {exc}: {exc.__cause__}", file=sys.stderr)
        return 1
    bridge = None
    try:
        print(f"MQTT broker listening on {broker.address}", file=sys.stderr, flush=True)
        if args.rule_sql:
            bridge = IotRulesBridge(broker.host, broker.port, {"local_rule": args.rule_sql}, _report, _report_error)
            bridge.start()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        if bridge is not None:
            bridge.stop()
        broker.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _report(_rule: str, output: dict[str, Any]) -> None:
    # Counts and device ids only: outputs carry patient identifiers.
    readings = output.get("readings")
    count = len(readings) if isinstance(readings, list) else 1
    print(f"rule output: device {output.get('device_id', '?')}, {count} reading(s)", file=sys.stderr, flush=True)


def _report_error(_rule: str, error: dict[str, Any]) -> None:
    reason = error["failures"][0]["errorMessage"]
    print(f"rule error on {error['topic']}: {reason}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
