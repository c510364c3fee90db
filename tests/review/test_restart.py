"""SIGKILL the review server after some decisions: nothing is lost and a
restart resumes at the first unreviewed item."""
import re
import signal
import urllib.parse
import urllib.request

from spacy_clinie.review.store import FeedbackStore

from .conftest import Server


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url: str):
    try:
        resp = OPENER.open(url, timeout=60)
    except urllib.error.HTTPError as err:  # 3xx with redirects off
        return err.code, err.headers, err.read().decode()
    return resp.status, resp.headers, resp.read().decode()


def decide(server: Server, pos: int, action: str) -> str:
    status, _, html = get(f"{server.url}/item/{pos}")
    assert status == 200
    token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    data = urllib.parse.urlencode({"action": action, "csrf": token}).encode()
    try:
        OPENER.open(f"{server.url}/item/{pos}/decide", data=data, timeout=60)
        raise AssertionError("expected a redirect after the decision")
    except urllib.error.HTTPError as err:
        assert err.code == 303, err.read()[-500:]
        return err.headers["Location"]


def test_kill_and_restart_loses_nothing(review_env, tmp_path):
    store_path = tmp_path / "feedback.sqlite"
    server = Server(review_env, store_path, tmp_path / "server.log")
    try:
        assert get(server.url + "/")[1]["Location"].endswith("/item/0")
        # out of order on purpose: items 0, 1 and 3; item 2 stays open
        assert decide(server, 0, "ok").endswith("/item/1")
        decide(server, 1, "gold")
        decide(server, 3, "gold")
        server.proc.send_signal(signal.SIGKILL)
        assert server.proc.wait(30) == -signal.SIGKILL
    finally:
        server.stop()

    rows = FeedbackStore(store_path).feedback()
    assert {(r["position"], r["task"], r["action"]) for r in rows} == {(0, "concepts", "ok"), (0, "aux", "gold"), (1, "aux", "gold")}

    again = Server(review_env, store_path, tmp_path / "server2.log")
    try:
        status, headers, _ = get(again.url + "/")
        assert status == 302 and headers["Location"].endswith("/item/2")
        status, _, html = get(again.url + "/item/2")
        assert "3 of 10 reviewed" in html and 'id="pending"' in html
        status, _, html = get(again.url + "/item/3")
        assert 'id="decided"' in html and "<b>gold</b>" in html
        decide(again, 2, "ok")
        assert get(again.url + "/")[1]["Location"].endswith("/item/4")
    finally:
        again.stop()
    assert len(FeedbackStore(store_path).history()) == 4
