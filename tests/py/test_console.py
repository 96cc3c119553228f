"""The web console at /console (issue #10), driven in Debian's chromium through Playwright.

One browser for the module; each test has its own browser context (cookies). Screenshots of
each page go to docs/img/console-*.png (shown in docs/console.md).
"""

from __future__ import annotations

import json
import time

import pytest

import rotary_testlib as lib
from rotary_testlib import unique_name

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

CHROMIUM = "/usr/bin/chromium"
IMG = lib.REPO / "docs" / "img"


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def ctx(browser):
    c = browser.new_context(viewport={"width": 1280, "height": 900})
    c.set_default_timeout(15_000)
    yield c
    c.close()


@pytest.fixture
def page(ctx):
    return ctx.new_page()


def shot(page, name):
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / f"console-{name}.png"), full_page=True)


def sign_in(page, server, akid=lib.ACCESS_KEY, secret=lib.SECRET_KEY):
    page.goto(server.url + "/console")
    expect(page).to_have_url(server.url + "/console/signin")
    page.get_by_label("Access key ID").fill(akid)
    page.get_by_label("Secret access key").fill(secret)
    page.get_by_role("button", name="Sign in").click()


def api(server, target, body, **sign_kw):
    r = lib.raw_call(server.url, target, json.dumps(body), **sign_kw)
    assert r.status == 200, f"{target}: {r.status} {r.body[:300]!r}"
    return r.json


def make_user(server, name, policy=None):
    api(server, "rotary.CreateUser", {"UserName": name})
    key = api(server, "rotary.CreateAccessKey", {"UserName": name})["AccessKey"]
    if policy:
        api(server, "rotary.PutUserPolicy", {"UserName": name, "PolicyName": "inline",
                                             "PolicyDocument": json.dumps(policy)})
    return key["AccessKeyId"], key["SecretAccessKey"]


def csrf_of(page):
    return page.locator("input[name=csrf]").first.get_attribute("value")


def wait_for_history(page, outcome, timeout=30):
    """Reloads the details page until the newest rotation attempt has `outcome`."""
    deadline = time.monotonic() + timeout
    while True:
        first = page.locator(".attempt").first
        if first.count() and first.get_attribute("data-outcome") == outcome:
            return first
        if time.monotonic() > deadline:
            pytest.fail(f"no rotation with outcome {outcome}; page:\n{page.inner_text('main')}")
        time.sleep(0.5)
        page.reload()


# ------------------------------------------------------------------------------------------
def test_sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_it(server, page, ctx):
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/console/signin")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "signin")
    sign_in(page, server)
    expect(page).to_have_url(server.url + "/console/secrets")
    expect(page.get_by_text(f"arn:aws:iam::{lib.ACCOUNT}:root")).to_be_visible()
    cookie = next(c for c in ctx.cookies() if c["name"] == "rotary_console")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain HTTP here; Secure is set under TLS
    assert cookie["path"] == "/console"
    assert cookie["expires"] > time.time() + 3600, cookie
    assert len(cookie["value"]) == 64
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url + "/console/signin")
    page.goto(server.url + "/console/secrets")
    expect(page).to_have_url(server.url + "/console/signin")
    # The old cookie is dead on the server too.
    ctx.add_cookies([{**cookie}])
    page.goto(server.url + "/console/secrets")
    expect(page).to_have_url(server.url + "/console/signin")


def test_sign_in_with_the_keyboard_only(server, page):
    page.goto(server.url + "/console/signin")
    # The access key field has focus (autofocus, once the page has loaded); Tab moves to the
    # secret; Enter submits.
    expect(page.get_by_label("Access key ID")).to_be_focused()
    page.keyboard.type(lib.ACCESS_KEY)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Secret access key")).to_be_focused()
    page.keyboard.type(lib.SECRET_KEY)
    expect(page.get_by_label("Access key ID")).to_have_value(lib.ACCESS_KEY)
    expect(page.get_by_label("Secret access key")).to_have_value(lib.SECRET_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(server.url + "/console/secrets")
    # The first Tab reaches the skip link, which moves focus to the content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_wrong_secret_key_is_refused(server, page, ctx):
    page.goto(server.url + "/console/signin")
    page.get_by_label("Access key ID").fill(lib.ACCESS_KEY)
    page.get_by_label("Secret access key").fill("not-the-secret-key")
    with page.expect_response(lambda r: r.request.method == "POST") as resp:
        page.get_by_role("button", name="Sign in").click()
    assert resp.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed.")
    assert not [c for c in ctx.cookies() if c["name"] == "rotary_console"]
    page.get_by_label("Access key ID").fill("AKIANOSUCHKEY0000000")
    page.get_by_label("Secret access key").fill(lib.SECRET_KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Sign-in failed.")
    shot(page, "signin-refused")


def test_secret_lifecycle_create_reveal_rotate_delete_restore(server, page):
    name = unique_name("console/app")
    sign_in(page, server)
    # Store a new key/value secret with a tag.
    page.get_by_role("link", name="Store a new secret").click()
    page.get_by_label("Secret name").fill(name)
    page.get_by_label("Description (optional)").fill("Console test database")
    page.get_by_label("Key 1", exact=True).fill("username")
    page.get_by_label("Value 1", exact=True).fill("app")
    page.get_by_label("Key 2", exact=True).fill("password")
    page.get_by_label("Value 2", exact=True).fill("pw-console-1")
    page.get_by_label("Tag key 1", exact=True).fill("team")
    page.get_by_label("Tag value 1", exact=True).fill("payments")
    shot(page, "new-secret")
    page.get_by_role("button", name="Store").click()
    expect(page.get_by_role("status")).to_contain_text("Secret stored.")
    expect(page.get_by_role("heading", name=f"Secret {name}")).to_be_visible()
    expect(page.locator("#rotation [data-rotation-status]")).to_have_text("Disabled")
    assert "pw-console-1" not in page.content()

    # The list finds it by tag value, with its rotation status.
    page.goto(server.url + "/console/secrets")
    page.get_by_label("Search").fill("payments")
    page.get_by_label("in", exact=True).select_option("tag-value")
    page.get_by_role("button", name="Search").click()
    row = page.locator("#secrets tbody tr", has_text=name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Disabled")
    shot(page, "secrets")
    row.get_by_role("link", name=name).click()

    # Reveal: a POST answered with Cache-Control: no-store.
    with page.expect_response(lambda r: r.url.endswith("/console/secret/value")) as resp:
        page.get_by_role("button", name="Retrieve secret value").click()
    assert resp.value.headers["cache-control"] == "no-store"
    expect(page.locator("#secret-value")).to_contain_text("pw-console-1")
    expect(page.locator("#secret-value")).to_contain_text("username")
    shot(page, "value")
    page.get_by_role("link", name="Hide value").click()
    assert "pw-console-1" not in page.content()

    # Edit rotation: a cron schedule, previewed as typed.
    page.get_by_role("link", name="Edit rotation").click()
    page.get_by_label("Interval").select_option("expression")
    page.get_by_label("Schedule expression").fill("cron(0 8 ? * MON-FRI *)")
    page.get_by_label("Window duration (optional, e.g. 3h)").fill("2h")
    expect(page.locator("#preview li")).to_have_count(5)
    expect(page.locator("#preview li").first).to_contain_text("08:00 UTC")
    # A wrong expression shows the server's validation message.
    page.get_by_label("Schedule expression").fill("cron(0 8 * *)")
    expect(page.locator("#preview [role=alert]")).to_be_visible()
    page.get_by_label("Schedule expression").fill("cron(0 8 ? * MON-FRI *)")
    expect(page.locator("#preview li")).to_have_count(5)
    page.get_by_label("Rotation function").select_option(label="rotary-generic-password")
    page.get_by_label("Rotate immediately when saved (otherwise only testSecret runs now)").uncheck()
    shot(page, "rotation")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Rotation configuration saved.")
    expect(page.locator("#rotation [data-rotation-status]")).to_have_text("Enabled")
    expect(page.locator("#rotation")).to_contain_text("cron(0 8 ? * MON-FRI *)")
    expect(page.locator("#rotation")).to_contain_text("rotary-generic-password")
    wait_for_history(page, "Succeeded")  # the testSecret-only run

    # Rotate now: a new version becomes AWSCURRENT; the history shows the attempt.
    page.get_by_role("button", name="Rotate secret immediately").click()
    expect(page.get_by_role("status")).to_contain_text("Rotation started.")
    deadline = time.monotonic() + 30
    while page.locator(".attempt").count() < 2 or \
            page.locator(".attempt").first.get_attribute("data-outcome") != "Succeeded":
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(0.5)
        page.reload()
    expect(page.locator(".attempt").first).to_contain_text("finishSecret")
    expect(page.locator("table", has_text="Staging labels")).to_contain_text("AWSPREVIOUS")
    shot(page, "secret")
    with page.expect_response(lambda r: r.url.endswith("/console/secret/value")):
        page.get_by_role("button", name="Retrieve secret value").click()
    assert "pw-console-1" not in page.inner_text("#secret-value")
    expect(page.locator("main")).to_contain_text("AWSCURRENT")
    page.get_by_role("link", name="Hide value").click()
    # The previous version, from its row in Versions.
    versions = page.locator("table", has_text="Staging labels")
    versions.locator("tr", has_text="AWSPREVIOUS").get_by_role("button", name="Retrieve").click()
    expect(page.locator("#secret-value")).to_contain_text("pw-console-1")
    expect(page.locator("main")).to_contain_text("AWSPREVIOUS")
    page.get_by_role("link", name="Hide value").click()

    # Cancel rotation.
    page.get_by_role("button", name="Cancel rotation").click()
    expect(page.get_by_role("status")).to_contain_text("Rotation cancelled")
    expect(page.locator("#rotation [data-rotation-status]")).to_have_text("Disabled")

    # Delete with a recovery window, then restore.
    page.get_by_label("Recovery window (days, 7–30)").fill("7")
    page.get_by_role("button", name="Schedule deletion").click()
    expect(page.get_by_role("status").first).to_contain_text("Secret scheduled for deletion")
    shot(page, "deleted")
    page.get_by_role("button", name="Restore secret").click()
    expect(page.get_by_role("status")).to_contain_text("Secret restored.")
    expect(page.get_by_role("button", name="Schedule deletion")).to_be_visible()


def test_tags_and_resource_policy_with_validation(server, page):
    name = unique_name("console/policy")
    arn = api(server, "secretsmanager.CreateSecret",
              {"Name": name, "SecretString": "policy-value",
               "ClientRequestToken": lib.new_token()})["ARN"]
    sign_in(page, server)
    page.goto(server.url + f"/console/secret?id={name}")
    page.get_by_label("Tag key", exact=True).fill("owner")
    page.get_by_label("Tag value", exact=True).fill("team-a")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_role("status")).to_contain_text("Tag saved.")
    expect(page.locator("#tags")).to_contain_text("team-a")
    page.locator("#tags tr", has_text="owner").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("status")).to_contain_text("Tag removed.")
    expect(page.locator("#tags")).to_have_count(0)

    page.get_by_role("link", name="Resource policy").click()
    # A policy that does not parse: the validation says why, and nothing is stored.
    page.get_by_label("Policy document (JSON)").fill('{"Version": "2012-10-17", "Statement": [')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert "ResourcePolicy" not in api(server, "secretsmanager.GetResourcePolicy",
                                       {"SecretId": name})
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": f"arn:aws:iam::{lib.ACCOUNT}:user/nobody"},
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]}, indent=2)
    page.get_by_label("Policy document (JSON)").fill(policy)
    page.get_by_role("button", name="Validate").click()
    expect(page.get_by_role("status")).to_contain_text("The policy is valid.")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_contain_text("Resource policy saved.")
    stored = api(server, "secretsmanager.GetResourcePolicy", {"SecretId": name})
    assert json.loads(stored["ResourcePolicy"]) == json.loads(policy)
    assert stored["ARN"] == arn
    shot(page, "policy")
    page.get_by_role("button", name="Delete policy").click()
    expect(page.get_by_role("status")).to_contain_text("Resource policy deleted.")


def test_failing_function_is_shown_failing_with_its_error(server, page):
    name = unique_name("console/failing")
    fname = unique_name("console-broken").replace("/", "-")
    api(server, "secretsmanager.CreateSecret", {"Name": name, "SecretString": "v0-failing",
                                                "ClientRequestToken": lib.new_token()})
    fn = api(server, "rotary.CreateFunction", {"Name": fname, "Url": "http://127.0.0.1:9/"})
    sign_in(page, server)
    page.goto(server.url + f"/console/secret/rotation?id={name}")
    page.get_by_label("Interval").select_option("7")
    page.get_by_label("Rotation function").select_option(value=fn["FunctionArn"])
    page.get_by_role("button", name="Save").click()
    attempt = page.locator(".attempt").first
    deadline = time.monotonic() + 30
    while not (attempt.count() and attempt.get_attribute("data-outcome") in ("Failed", "Retrying")):
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(0.5)
        page.reload()
        attempt = page.locator(".attempt").first
    expect(attempt).to_have_class("attempt failed")
    expect(attempt).to_contain_text("createSecret")
    expect(page.locator("#rotation")).to_contain_text("Failing")
    shot(page, "rotation-failing")
    # The way out: reset (remove AWSPENDING from the failed version), re-point the secret at a
    # working function, rotate.
    secret_url = page.url
    page.get_by_role("link", name="Reset failed rotation…").click()
    expect(page.get_by_role("heading", name=f"Reset failed rotation: {name}")).to_be_visible()
    expect(page.locator("main")).to_contain_text("This removes AWSPENDING from version")
    shot(page, "reset")
    page.get_by_role("button", name="Remove AWSPENDING").click()
    expect(page.get_by_role("status")).to_contain_text("AWSPENDING removed")
    expect(page.get_by_role("link", name="Reset failed rotation…")).to_have_count(0)
    page.get_by_role("link", name="Edit rotation").click()
    page.get_by_label("Rotation function").select_option(label="rotary-generic-password")
    page.get_by_label("Rotate immediately when saved (otherwise only testSecret runs now)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Rotation configuration saved.")
    page.goto(secret_url)
    wait_for_history(page, "Succeeded")
    page.goto(server.url + "/console/dashboard")
    # (A rotation still being retried is not yet a compliance finding: see rotary compliance.)
    expect(page.get_by_role("heading", name="Rotation disabled")).to_be_visible()
    expect(page.get_by_role("heading", name="Last rotation failed")).to_be_visible()
    shot(page, "dashboard")
    page.goto(server.url + "/console/functions")
    expect(page.locator("table")).to_contain_text(fname)
    expect(page.locator("table")).to_contain_text("rotary-generic-password")
    shot(page, "functions")
    api(server, "secretsmanager.CancelRotateSecret", {"SecretId": name})
    api(server, "rotary.DeleteFunction", {"Name": fname, "Force": True})


def test_user_without_permission_sees_access_denied_and_never_the_value(server, page):
    name = unique_name("console/private")
    arn = api(server, "secretsmanager.CreateSecret",
              {"Name": name, "SecretString": "private-value-42",
               "ClientRequestToken": lib.new_token()})["ARN"]
    user = unique_name("console-reader").replace("/", "-")
    akid, secret = make_user(server, user, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Action": ["secretsmanager:ListSecrets", "secretsmanager:DescribeSecret"],
                       "Resource": "*"}],
    })
    sign_in(page, server, akid, secret)
    expect(page).to_have_url(server.url + "/console/secrets")
    expect(page.get_by_text(f"user/{user}")).to_be_visible()
    page.goto(server.url + f"/console/secret?id={name}")
    expect(page.get_by_role("heading", name=f"Secret {name}")).to_be_visible()
    with page.expect_response(lambda r: r.url.endswith("/console/secret/value")) as resp:
        page.get_by_role("button", name="Retrieve secret value").click()
    assert resp.value.status == 403
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Access denied.")
    expect(alert).to_contain_text(f"arn:aws:iam::{lib.ACCOUNT}:user/{user} is not authorized "
                                  "to perform: secretsmanager:GetSecretValue")
    assert "private-value-42" not in page.content()
    shot(page, "access-denied")
    # Writes are refused the same way, and change nothing.
    page.goto(server.url + f"/console/secret?id={name}")
    page.get_by_role("button", name="Cancel rotation").click()
    expect(page.get_by_role("alert")).to_contain_text("Access denied.")
    # The audit log has the console's sign-in and the denied GetSecretValue, under the
    # user's key, as for a signed API request.
    rec = wait_for_audit(server, lambda r: r.get("Operation") == "secretsmanager:GetSecretValue"
                         and r.get("PrincipalArn", "").endswith(f":user/{user}"))
    assert rec["Outcome"] == "Denied" and rec["AccessKeyId"] == akid, rec
    assert rec["SecretArn"] == arn, rec
    assert rec["UserAgent"].startswith("rotary-console ("), rec
    rec = wait_for_audit(server, lambda r: r.get("Operation") == "console:SignIn"
                         and r.get("AccessKeyId") == akid)
    assert rec["Outcome"] == "Allowed", rec
    assert "private-value-42" not in (server.data_dir / "audit.log").read_text()


def wait_for_audit(server, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        path = server.data_dir / "audit.log"
        if path.exists():
            for line in path.read_text().splitlines():
                rec = json.loads(line)
                if pred(rec):
                    return rec
        assert time.monotonic() < deadline, "no matching audit record"
        time.sleep(0.2)


def test_session_cookie_is_secure_under_tls(tmp_path, browser):
    from test_tls import make_ca, make_server_cert

    pki = tmp_path / "pki"
    pki.mkdir()
    ca = make_ca(pki)
    cert, key = make_server_cert(pki, "console", "rotary-console")
    srv = lib.Server(tmp_path / "tls", name="tls",
                     args=["--tls-cert", str(cert), "--tls-key", str(key)], ca_bundle=str(ca))
    srv.start()
    try:
        c = browser.new_context(ignore_https_errors=True)
        try:
            page = c.new_page()
            sign_in(page, srv)
            expect(page).to_have_url(srv.url + "/console/secrets")
            for name in ("rotary_console",):
                cookie = next(x for x in c.cookies() if x["name"] == name)
                assert cookie["secure"] is True and cookie["httpOnly"] is True, cookie
                assert cookie["sameSite"] == "Strict", cookie
        finally:
            c.close()
    finally:
        srv.stop()


def test_post_without_or_with_a_wrong_csrf_token_is_refused(server, page, ctx):
    name = unique_name("console/csrf")
    sign_in(page, server)
    good = csrf_of(page)
    form = {"name": name, "kind": "plaintext", "plaintext": "csrf-value"}
    r = ctx.request.post(server.url + "/console/secrets/new", form=form, max_redirects=0)
    assert r.status == 403, r.status
    assert "CSRF" in r.text()
    r = ctx.request.post(server.url + "/console/secrets/new",
                         form={**form, "csrf": "0" * 64}, max_redirects=0)
    assert r.status == 403
    r = ctx.request.post(server.url + "/console/signout", form={}, max_redirects=0)
    assert r.status == 403
    # Nothing was created; with the right token the same POST works.
    page.goto(server.url + f"/console/secret?id={name}")
    expect(page.get_by_role("alert")).to_contain_text("ResourceNotFoundException")
    r = ctx.request.post(server.url + "/console/secrets/new", form={**form, "csrf": good},
                         max_redirects=0)
    assert r.status == 303, r.status
    # The sign-in form is protected too (double-submit cookie).
    r = ctx.request.post(server.url + "/console/signin",
                         form={"access_key_id": lib.ACCESS_KEY,
                               "secret_access_key": lib.SECRET_KEY},
                         max_redirects=0)
    assert r.status == 403


def test_users_page_and_deactivating_a_key_ends_its_sessions(server, page, browser):
    user = unique_name("console-ops").replace("/", "-")
    akid, secret = make_user(server, user, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets",
                       "Resource": "*"}],
    })
    other = browser.new_context()
    try:
        user_page = other.new_page()
        sign_in(user_page, server, akid, secret)
        expect(user_page).to_have_url(server.url + "/console/secrets")
        # The user may not list users.
        user_page.goto(server.url + "/console/users")
        expect(user_page.get_by_role("alert")).to_contain_text("Access denied.")

        sign_in(page, server)
        page.get_by_role("link", name="Users").click()
        page.locator("#users").get_by_role("link", name=user).click()
        expect(page.locator("#keys")).to_contain_text(akid)
        expect(page.locator("main")).to_contain_text("secretsmanager:ListSecrets")
        shot(page, "user")
        page.locator("#keys tr", has_text=akid).get_by_role("button", name="Deactivate").click()
        expect(page.get_by_role("status")).to_contain_text("Access key updated.")
        expect(page.locator("#keys tr", has_text=akid)).to_contain_text("Inactive")

        # The user's session ended with the key.
        user_page.goto(server.url + "/console/secrets")
        expect(user_page).to_have_url(server.url + "/console/signin")
    finally:
        other.close()
