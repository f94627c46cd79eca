from libprocess import Process, Promise, handler


class Echo(Process):
    @handler("ping")
    def ping(self, sender, body):
        self.send(sender, "pong", body)


class Asker(Process):
    def __init__(self, target):
        super().__init__()
        self.target = target
        self.answer = Promise()

    def initialize(self):
        self.send(self.target, "ping", {"n": 1})

    @handler("pong")
    def pong(self, sender, body):
        self.answer.set((sender, body))


def test_local_ping_pong(runtime):
    echo = runtime.spawn(Echo())
    asker = Asker(echo)
    runtime.spawn(asker)
    sender, body = asker.answer.future.result(timeout=5)
    assert sender == echo
    assert body == {"n": 1}
