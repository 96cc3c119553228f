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


def shot(page, name, full_page=True):
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / f"console-{name}.png"), full_page=full_page)


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
    # Keyboard focus is visible: a solid outline on the skip link and on the next link.
    for _ in range(2):
        style = page.evaluate("(() => { const s = getComputedStyle(document.activeElement);"
                              " return [s.outlineStyle, s.outlineWidth]; })()")
        assert style == ["solid", "3px"], style
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.tagName") == "A"


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
    expect(page.locator("#rotation dt", has_text="Window duration").locator(
        "xpath=following-sibling::dd[1]")).to_have_text("2h")
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
    # The attempt is recorded as succeeded just before the labels move (so a crash between
    # the two cannot leave it InProgress): a page loaded in between shows the old labels.
    while "AWSPREVIOUS" not in page.locator("table", has_text="Staging labels").inner_text():
        assert time.monotonic() < deadline, page.inner_text("main")
        time.sleep(0.2)
        page.reload()
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
    # A process function that prints what it does and fails, like a rotator whose database
    # refuses the login.
    script = server.function_dir / f"{fname}.sh"
    script.write_text("#!/bin/sh\necho 'connecting to db.internal:5432'\n"
                      "echo 'db refused login' >&2\nexit 3\n")
    script.chmod(0o755)
    fn = api(server, "rotary.CreateFunction", {"Name": fname, "Command": script.name})
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
    # The error, and the step's output (stdout and stderr), in the failed step's row.
    expect(attempt.locator("dd.bad")).to_contain_text("exited with status 3: db refused login")
    step = attempt.locator("table.steps tr.failed", has_text="createSecret")
    expect(step.locator("pre")).to_contain_text("connecting to db.internal:5432")
    expect(step.locator("pre")).to_contain_text("db refused login")
    # With the default 5 attempts and a 60 s first delay, the attempt waits for its retry.
    expect(attempt).to_have_attribute("data-outcome", "Retrying")
    expect(attempt.locator("dt", has_text="Next retry")).to_have_count(1)
    expect(page.locator("#rotation")).to_contain_text("Failing")
    shot(page, "rotation-failing")
    secret_url = page.url
    # The dashboard lists it as failing, with the error and when the next attempt is due.
    page.goto(server.url + "/console/dashboard")
    failing = page.locator("section[aria-labelledby=RotationFailing]")
    expect(failing.locator("li", has_text=name)).to_contain_text("db refused login")
    expect(failing.locator("li", has_text=name)).to_contain_text("is due at")
    page.goto(secret_url)
    # The way out: reset (remove AWSPENDING from the failed version), re-point the secret at a
    # working function, rotate.
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
    expect(page.get_by_role("heading", name="Rotation disabled")).to_be_visible()
    expect(page.get_by_role("heading", name="Last rotation failed")).to_be_visible()
    shot(page, "dashboard")
    page.goto(server.url + "/console/functions")
    expect(page.locator("table")).to_contain_text(fname)
    expect(page.locator("table")).to_contain_text("rotary-generic-password")
    # Each function with the secrets that rotate with it: the secret moved to the built-in.
    generic = page.locator("#functions tbody tr", has_text="rotary-generic-password")
    expect(generic.locator("td[data-secrets]").get_by_role("link", name=name)).to_have_count(1)
    expect(page.locator("#functions tbody tr", has_text=fname).locator("td[data-secrets]")
           ).to_have_text("None")
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


# ------------------------------------------------------------------------------------------
# Secrets list: rotation status filter over many pages
# ------------------------------------------------------------------------------------------
def function_arn(server, name):
    fns = api(server, "rotary.ListFunctions", {})["Functions"]
    return next(f["FunctionArn"] for f in fns if f["Name"] == name)


def wait_failing(server, arns, timeout=40):
    """Waits until the compliance report lists every ARN as failing (being retried or
    failed)."""
    deadline = time.monotonic() + timeout
    while True:
        report = api(server, "rotary.GetComplianceReport", {})
        failing = {s["ARN"] for s in report["Secrets"]
                   if any(f["Check"] in ("RotationFailing", "LastRotationFailed")
                          for f in s["Findings"])}
        if set(arns) <= failing:
            return
        assert time.monotonic() < deadline, f"not failing: {set(arns) - failing}"
        time.sleep(0.5)


def rows_of(page):
    return page.locator("#secrets tbody tr td:first-child a").all_inner_texts()


def test_rotation_status_filter_fills_pages_across_the_listing(server, page):
    prefix = unique_name("console/page")
    sm = server.client()
    names = [f"{prefix}/s{i:03d}" for i in range(130)]
    arns = {}
    for n in names:
        arns[n] = sm.create_secret(Name=n, SecretString='{"username":"u","password":"p0"}',
                                   ClientRequestToken=lib.new_token())["ARN"]
    generic = function_arn(server, "rotary-generic-password")
    enabled = names[::13]  # 10 secrets, spread over the listing
    for n in enabled:
        sm.rotate_secret(SecretId=n, RotationLambdaARN=generic,
                         RotationRules={"AutomaticallyAfterDays": 30}, RotateImmediately=False)
    broken = unique_name("console-page-broken").replace("/", "-")
    fn = api(server, "rotary.CreateFunction", {"Name": broken, "Url": "http://127.0.0.1:9/"})
    failing = [names[5], names[77]]
    for n in failing:
        sm.rotate_secret(SecretId=n, RotationLambdaARN=fn["FunctionArn"],
                         RotationRules={"AutomaticallyAfterDays": 30})
    wait_failing(server, [arns[n] for n in failing])
    disabled = [n for n in names if n not in enabled and n not in failing]

    sign_in(page, server)

    def search(status):
        page.goto(server.url + "/console/secrets")
        page.get_by_label("Search").fill(prefix)
        page.get_by_label("in", exact=True).select_option("name")
        page.get_by_label("Rotation status").select_option(status)
        page.get_by_role("button", name="Search").click()

    # 118 Disabled secrets: full pages of 25 while more follow, each secret once.
    search("Disabled")
    seen = []
    pages = 0
    while True:
        pages += 1
        got = rows_of(page)
        nxt = page.get_by_role("link", name="Next page")
        if nxt.count():
            assert len(got) == 25, got
            seen += got
            nxt.click()
        else:
            seen += got
            break
    assert seen == disabled and pages == 5, (len(seen), pages)

    # 12 Enabled secrets (10 + the 2 failing ones) are spread over two ListSecrets chunks:
    # one page holds them all, with no "Next page".
    search("Enabled")
    assert rows_of(page) == sorted(enabled + failing)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)

    # Failing: the two secrets whose function cannot be reached, with the status shown.
    search("Failing")
    assert rows_of(page) == failing
    for n in failing:
        expect(page.locator("#secrets tr", has_text=n).locator("[data-status]")).to_contain_text(
            "Failing")
    shot(page, "secrets-failing")
    search("Overdue")
    assert rows_of(page) == []
    for n in failing:
        api(server, "secretsmanager.CancelRotateSecret", {"SecretId": n})
    api(server, "rotary.DeleteFunction", {"Name": broken, "Force": True})


# ------------------------------------------------------------------------------------------
# Dashboard: rotations of the last 24 hours
# ------------------------------------------------------------------------------------------
def test_dashboard_lists_rotations_of_the_last_24_hours(server, page):
    name = unique_name("console/recent")
    sm = server.client()
    sm.create_secret(Name=name, SecretString='{"username":"u","password":"p0"}',
                     ClientRequestToken=lib.new_token())
    sm.rotate_secret(SecretId=name, RotationLambdaARN=function_arn(server, "rotary-generic-password"),
                     RotationRules={"AutomaticallyAfterDays": 30})
    deadline = time.monotonic() + 30
    while "LastRotatedDate" not in sm.describe_secret(SecretId=name):
        assert time.monotonic() < deadline, "the rotation did not finish"
        time.sleep(0.3)
    # AWSPENDING left on a version that is not AWSCURRENT, with no rotation running.
    stuck = unique_name("console/stuck")
    sm.create_secret(Name=stuck, SecretString="v1", ClientRequestToken=lib.new_token())
    sm.put_secret_value(SecretId=stuck, SecretString="v2", VersionStages=["AWSPENDING"],
                        ClientRequestToken=lib.new_token())
    sign_in(page, server)
    page.goto(server.url + "/console/dashboard")
    stuck_section = page.locator("section[aria-labelledby=PendingOnNonCurrentVersion]")
    expect(stuck_section.get_by_role("heading")).to_contain_text("Stuck with AWSPENDING")
    expect(stuck_section.get_by_role("link", name=stuck)).to_have_count(1)
    expect(page.locator("section[aria-labelledby=RotationFailing]").get_by_role(
        "link", name=stuck)).to_have_count(0)
    recent = page.locator("#recent")
    expect(recent.get_by_role("heading", name="Rotations in the last 24 hours")).to_be_visible()
    row = page.locator("#recent-rotations tr", has_text=name)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Succeeded")
    expect(row).to_contain_text("UTC")
    ok = int(page.locator("[data-count=succeeded] strong").inner_text())
    assert ok >= 1
    row.get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=f"Secret {name}")).to_be_visible()
    page.goto(server.url + "/console/dashboard")
    shot(page, "dashboard-rotations", full_page=False)
    sm.cancel_rotate_secret(SecretId=name)


# ------------------------------------------------------------------------------------------
# Secrets list: search in each field, sort by each column
# ------------------------------------------------------------------------------------------
def test_secrets_list_searches_each_field_and_sorts_each_column(server, page):
    prefix = unique_name("console/sort")
    sm = server.client()
    specs = {"b": ("charlie db", "blue"), "c": ("alpha cache", "green"), "a": ("bravo queue", "red")}
    for suffix, (desc, color) in specs.items():
        sm.create_secret(Name=f"{prefix}/{suffix}", SecretString="v", Description=desc,
                         Tags=[{"Key": "color", "Value": color}],
                         ClientRequestToken=lib.new_token())
    sm.rotate_secret(SecretId=f"{prefix}/a", RotationLambdaARN=function_arn(
        server, "rotary-generic-password"), RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False)
    sm.get_secret_value(SecretId=f"{prefix}/c")  # the only one ever read
    time.sleep(0.02)
    sm.update_secret(SecretId=f"{prefix}/b", Description="charlie db")  # changed last
    sign_in(page, server)

    def search(query, field):
        page.goto(server.url + "/console/secrets")
        page.get_by_label("Search").fill(query)
        page.get_by_label("in", exact=True).select_option(field)
        page.get_by_role("button", name="Search").click()
        return [n.removeprefix(prefix + "/") for n in rows_of(page)
                if n.startswith(prefix + "/")]

    assert search("bravo", "description") == ["a"]
    assert search("green", "tag-value") == ["c"]
    assert search(prefix, "name") == ["a", "b", "c"]  # by name, ascending
    head = page.locator("#secrets thead")
    expect(head.locator("th", has_text="Name")).to_have_attribute("aria-sort", "ascending")

    def mine():
        return [n.removeprefix(prefix + "/") for n in rows_of(page)]

    def sort_by(title, order):
        head.get_by_role("link", name=title).click()
        expect(head.locator("th", has_text=title)).to_have_attribute("aria-sort", order)
        return mine()

    # Server-side sorts (over the whole listing): a header link flips the order.
    assert sort_by("Name", "descending") == ["c", "b", "a"]
    assert sort_by("Last changed", "ascending")[-1] == "b", mine()
    assert sort_by("Last accessed", "ascending")[-1] == "c", mine()
    assert sort_by("Last accessed", "descending")[0] == "c", mine()
    # Columns sorted on the page: description, rotation status, next rotation.
    head.get_by_role("button", name="Description").click()
    assert mine() == ["c", "a", "b"]  # alpha, bravo, charlie
    head.get_by_role("button", name="Description").click()
    assert mine() == ["b", "a", "c"]
    head.get_by_role("button", name="Rotation status").click()
    assert mine()[-1] == "a", mine()  # Disabled, Disabled, Enabled
    head.get_by_role("button", name="Rotation status").click()
    assert mine()[0] == "a", mine()
    expect(page.locator("#secrets tr", has_text=f"{prefix}/a").locator("td").nth(5)
           ).to_contain_text("UTC")
    head.get_by_role("button", name="Next rotation").click()
    first = mine()
    head.get_by_role("button", name="Next rotation").click()
    again = mine()
    # "a" alone has a next rotation: at one end, then at the other.
    assert {first[0], first[-1]} & {"a"} and again.index("a") == 2 - first.index("a"), \
        (first, again)


def test_new_plaintext_secret_with_an_encryption_key(server, page):
    name = unique_name("console/kms")
    alias = "alias/" + unique_name("console-key").replace("/", "-")
    # Where named keys are made with rotary.CreateKey, make one; otherwise a key is made the
    # first time a secret names it.
    made = lib.raw_call(server.url, "rotary.CreateKey", json.dumps({
        "Alias": alias, "Description": "console test key"})).status == 200
    sign_in(page, server)
    page.goto(server.url + "/console/secrets/new")
    if made:  # the field suggests the keys the principal may list
        expect(page.locator(f"#kms-keys option[value='{alias}']")).to_contain_text(
            "console test key")
    page.get_by_label("Secret name").fill(name)
    page.get_by_label("Plaintext", exact=True).check()
    page.get_by_label("Plaintext value").fill("plain-kms-value")
    page.get_by_label("Encryption key (KMS key ID, ARN or alias; empty for the default)").fill(alias)
    page.get_by_role("button", name="Store").click()
    expect(page.get_by_role("status")).to_contain_text("Secret stored.")
    d = server.client().describe_secret(SecretId=name)
    assert d.get("KmsKeyId") and "aws/secretsmanager" not in d["KmsKeyId"], d
    shown = page.locator("dl.grid dt", has_text="Encryption key").locator("xpath=following-sibling::dd[1]")
    expect(shown).to_have_text(d["KmsKeyId"])
    assert server.client().get_secret_value(SecretId=name)["SecretString"] == "plain-kms-value"
    page.get_by_role("button", name="Retrieve secret value").click()
    expect(page.locator("#secret-value")).to_contain_text("plain-kms-value")
    page.get_by_role("link", name="Hide value").click()
    # Edit the value: a new AWSCURRENT, the old one AWSPREVIOUS, under the same key.
    page.get_by_text("Edit secret value").click()
    page.get_by_label("Plaintext", exact=True).check()
    page.get_by_label("Plaintext value").fill("plain-kms-value-2")
    page.get_by_role("button", name="Save new value").click()
    expect(page.get_by_role("status")).to_contain_text("New secret value stored")
    sm = server.client()
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "plain-kms-value-2"
    assert sm.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == \
        "plain-kms-value"
    assert sm.describe_secret(SecretId=name)["KmsKeyId"] == d["KmsKeyId"]


# ------------------------------------------------------------------------------------------
# Accessibility: every form field has a label, every button a name
# ------------------------------------------------------------------------------------------
UNLABELLED = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')).filter(e => {
  if (e.tagName === 'BUTTON') return !e.textContent.trim() && !e.getAttribute('aria-label');
  return !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
      && !e.getAttribute('aria-labelledby');
}).map(e => e.outerHTML)"""


def test_every_field_has_a_label_on_every_page(server, page):
    name = unique_name("console/labels")
    api(server, "secretsmanager.CreateSecret", {"Name": name, "SecretString": '{"k":"v"}',
                                                "ClientRequestToken": lib.new_token()})
    user = unique_name("console-labels").replace("/", "-")
    api(server, "rotary.CreateUser", {"UserName": user})
    # Nothing is fetched from anywhere but the server (no CDN, no external font).
    fetched = []
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(server.url + "/console/signin")
    assert page.evaluate(UNLABELLED) == []
    sign_in(page, server)
    for path in ("/console/dashboard", "/console/secrets", "/console/secrets/new",
                 f"/console/secret?id={name}", f"/console/secret/rotation?id={name}",
                 f"/console/secret/policy?id={name}", "/console/functions", "/console/users",
                 f"/console/user?name={user}", "/console/groups", "/console/audit"):
        page.goto(server.url + path)
        expect(page.locator("h1")).to_be_visible()
        assert page.locator("[role=alert]").count() == 0, (path, page.inner_text("main"))
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("html").get_attribute("lang"), path
    page.goto(server.url + f"/console/secret?id={name}")
    page.get_by_role("button", name="Retrieve secret value").click()
    expect(page.locator("#secret-value")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    assert fetched and all(u.startswith(server.url + "/") for u in fetched), \
        [u for u in fetched if not u.startswith(server.url + "/")]
    assert any(u.endswith("/console/assets/console.css") for u in fetched)


# ------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------
def test_audit_page_shows_a_reveal_filters_and_pages(server, page, browser):
    name = unique_name("console/audited")
    api(server, "secretsmanager.CreateSecret", {"Name": name, "SecretString": "audited-value-7",
                                                "ClientRequestToken": lib.new_token()})
    sign_in(page, server)
    page.goto(server.url + f"/console/secret?id={name}")
    page.get_by_role("button", name="Retrieve secret value").click()
    expect(page.locator("#secret-value")).to_contain_text("audited-value-7")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.get_by_label("Operation").fill("GetSecretValue")
    page.get_by_label("Secret").fill(name)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#audit tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("secretsmanager:GetSecretValue")
    expect(rows.first).to_contain_text(name)
    expect(rows.first).to_contain_text("Allowed")
    expect(rows.first).to_contain_text(f"arn:aws:iam::{lib.ACCOUNT}:root")
    assert "audited-value-7" not in page.content()
    shot(page, "audit")
    # Other filters narrow it down to nothing (Enter in a field submits the filters).
    page.get_by_label("Outcome").fill("Denied")
    page.get_by_label("Outcome").press("Enter")
    expect(page.locator("#audit")).to_contain_text("No records match.")
    page.get_by_label("Outcome").fill("")
    page.get_by_label("From (UTC)").fill("2000-01-01T00:00")
    page.get_by_label("Until (UTC)").fill("2000-01-02T00:00")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#audit")).to_contain_text("No records match.")
    # Unfiltered, the log spans pages of 50, newest first, none repeated.
    sm = server.client()
    for _ in range(60):
        sm.describe_secret(SecretId=name)
    page.goto(server.url + "/console/audit")
    first = page.locator("#audit tbody tr small").all_inner_texts()
    assert len(first) == 50
    page.get_by_role("link", name="Older records").click()
    second = page.locator("#audit tbody tr small").all_inner_texts()
    seq = [int(t.split()[0][1:]) for t in first + second]
    assert seq == sorted(seq, reverse=True) and len(set(seq)) == len(seq), seq
    assert seq[49] - seq[50] >= 1

    # A user without rotary:QueryAuditLog sees access denied, and the refusal is audited.
    user = unique_name("console-noaudit").replace("/", "-")
    akid, secret = make_user(server, user, {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:ListSecrets",
                       "Resource": "*"}]})
    other = browser.new_context()
    try:
        p2 = other.new_page()
        sign_in(p2, server, akid, secret)
        with p2.expect_response(lambda r: "/console/audit" in r.url) as resp:
            p2.goto(server.url + "/console/audit")
        assert resp.value.status == 403
        expect(p2.get_by_role("alert")).to_contain_text("Access denied.")
        expect(p2.get_by_role("alert")).to_contain_text("rotary:QueryAuditLog")
        assert p2.locator("#audit").count() == 0
    finally:
        other.close()
    rec = wait_for_audit(server, lambda r: r.get("Operation") == "rotary:QueryAuditLog"
                         and r.get("AccessKeyId") == akid)
    assert rec["Outcome"] == "Denied", rec


# ------------------------------------------------------------------------------------------
# Users, keys and policies
# ------------------------------------------------------------------------------------------
def test_admin_creates_a_user_policy_and_key_that_works_with_boto3(server, page, browser):
    secret_name = unique_name("console/for-new-user")
    api(server, "secretsmanager.CreateSecret", {"Name": secret_name, "SecretString": "for-bob",
                                                "ClientRequestToken": lib.new_token()})
    user = unique_name("console-bob").replace("/", "-")
    sign_in(page, server)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("New user name").fill(user)
    page.get_by_label("New user name").press("Enter")
    expect(page.get_by_role("status")).to_contain_text("User created.")
    expect(page.get_by_role("heading", name=f"User {user}")).to_be_visible()
    # Attach an inline policy: a malformed one is refused with the engine's reason.
    page.get_by_text("Attach an inline policy").click()
    page.get_by_label("Policy name").fill("read")
    page.get_by_label("Policy document (JSON)").fill('{"Version": "2012-10-17", "Statement": [')
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_contain_text("MalformedPolicyDocument")
    page.get_by_role("link", name="Back").click()
    page.get_by_text("Attach an inline policy").click()
    page.get_by_label("Policy name").fill("read")
    page.get_by_label("Policy document (JSON)").fill(json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                       "Resource": "*"}]}))
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("status")).to_contain_text("Policy saved.")
    expect(page.locator("main")).to_contain_text("secretsmanager:GetSecretValue")

    # Create a key: its secret is shown once, with a warning.
    with page.expect_response(lambda r: r.url.endswith("/console/user/key/create")) as resp:
        page.get_by_role("button", name="Create access key").click()
    assert resp.value.headers["cache-control"] == "no-store"
    box = page.locator("#new-key")
    expect(box).to_contain_text("shown only this once")
    akid = box.locator("[data-new-key-id]").inner_text()
    secret = box.locator("[data-new-key-secret]").inner_text()
    assert akid.startswith("AKIA") and len(secret) == 40
    shot(page, "user-new-key")
    page.goto(server.url + f"/console/user?name={user}")
    expect(page.locator("#keys")).to_contain_text(akid)
    assert secret not in page.content()

    # The key works with boto3, within the policy.
    bob = server.client(access_key=akid, secret_key=secret)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert bob.get_secret_value(SecretId=secret_name)["SecretString"] == "for-bob"
            break
        except Exception:  # noqa: BLE001 - the key may take a moment to be known
            assert time.monotonic() < deadline
            time.sleep(0.2)
    lib.expect_error(lambda: bob.list_secrets(), "AccessDeniedException")

    # The new user is not an administrator: the users pages say access denied, and a
    # create-user POST (with a good CSRF token) is refused too.
    other = browser.new_context()
    try:
        p2 = other.new_page()
        sign_in(p2, server, akid, secret)
        p2.goto(server.url + "/console/users")
        expect(p2.get_by_role("alert")).to_contain_text("Access denied.")
        p2.goto(server.url + f"/console/user?name={user}")
        expect(p2.get_by_role("alert")).to_contain_text("Access denied.")
        r = other.request.post(server.url + "/console/users/create",
                               form={"csrf": csrf_of(p2), "name": user + "-x"}, max_redirects=0)
        assert r.status == 403 and "Access denied." in r.text()
    finally:
        other.close()
    assert lib.raw_call(server.url, "rotary.GetUser",
                        json.dumps({"UserName": user + "-x"})).status == 400

    # Deactivate, then delete the key: boto3 calls with it are refused.
    page.locator("#keys tr", has_text=akid).get_by_role("button", name="Deactivate").click()
    expect(page.get_by_role("status")).to_contain_text("Access key updated.")
    lib.expect_error(lambda: bob.get_secret_value(SecretId=secret_name),
                     "UnrecognizedClientException")
    page.locator("#keys tr", has_text=akid).get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Access key deleted.")
    expect(page.locator("#keys")).not_to_contain_text(akid)
    # Detach the policy, delete the user.
    page.get_by_role("button", name="Detach policy read").click()
    expect(page.get_by_role("status")).to_contain_text("Policy removed.")
    page.get_by_role("button", name="Delete user").click()
    expect(page.get_by_role("status")).to_contain_text("User deleted.")
    # Each action is the IAM API's own audit record, as the root key through the console.
    for op in ("rotary:CreateUser", "rotary:PutUserPolicy", "rotary:CreateAccessKey",
               "rotary:DeleteAccessKey", "rotary:DeleteUser"):
        rec = wait_for_audit(server, lambda r, op=op: r.get("Operation") == op
                             and r.get("UserAgent", "").startswith("rotary-console")
                             and r.get("Outcome") == "Allowed")
        assert rec["PrincipalArn"] == f"arn:aws:iam::{lib.ACCOUNT}:root", rec
    assert secret not in (server.data_dir / "audit.log").read_text()


def test_groups_pages_list_groups_members_and_policies(server, page):
    group = unique_name("console-group").replace("/", "-")
    user = unique_name("console-member").replace("/", "-")
    api(server, "rotary.CreateGroup", {"GroupName": group})
    api(server, "rotary.CreateUser", {"UserName": user})
    api(server, "rotary.AddUserToGroup", {"GroupName": group, "UserName": user})
    api(server, "rotary.PutGroupPolicy", {
        "GroupName": group, "PolicyName": "readers", "PolicyDocument": json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "secretsmanager:DescribeSecret",
                "Resource": "*"}]})})
    sign_in(page, server)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Groups").click()
    expect(page.get_by_role("heading", name="Groups", exact=True)).to_be_visible()
    page.locator("#groups").get_by_role("link", name=group).click()
    expect(page.get_by_role("heading", name=f"Group {group}")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"arn:aws:iam::{lib.ACCOUNT}:group/{group}")
    expect(page.locator("#members tbody tr")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("secretsmanager:DescribeSecret")
    shot(page, "group")
    # The member's page links back to the group.
    page.locator("#members").get_by_role("link", name=user).click()
    expect(page.get_by_role("heading", name=f"User {user}")).to_be_visible()
    page.get_by_role("link", name=group).click()
    expect(page.get_by_role("heading", name=f"Group {group}")).to_be_visible()
    # A group that does not exist: the API's error.
    page.goto(server.url + "/console/group?name=no-such-group-x")
    expect(page.get_by_role("alert")).to_contain_text("ResourceNotFoundException")


# ------------------------------------------------------------------------------------------
# Sign-in rate limiting
# ------------------------------------------------------------------------------------------
def signin_from(server, source_ip, akid, secret):
    """Signs in over plain HTTP from `source_ip` (another loopback address, so the server
    sees another client); returns the status of the POST."""
    import http.client
    import re
    import urllib.parse

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10,
                                      source_address=(source_ip, 0))
    try:
        conn.request("GET", "/console/signin")
        r = conn.getresponse()
        html = r.read().decode()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
        body = urllib.parse.urlencode({"csrf": token, "access_key_id": akid,
                                       "secret_access_key": secret})
        conn.request("POST", "/console/signin", body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
        r = conn.getresponse()
        text = r.read().decode()
        return r.status, text
    finally:
        conn.close()


def test_sign_in_is_refused_after_five_failures(own_server, browser):
    srv = own_server
    user = "console-limited"
    akid, secret = make_user(srv, user)
    c = browser.new_context()
    try:
        page = c.new_page()
        page.goto(srv.url + "/console/signin")
        for _ in range(5):
            page.get_by_label("Access key ID").fill(akid)
            page.get_by_label("Secret access key").fill("wrong-secret")
            with page.expect_response(lambda r: r.request.method == "POST") as resp:
                page.get_by_role("button", name="Sign in").click()
            assert resp.value.status == 401
        # The sixth attempt is refused even with the right secret.
        page.get_by_label("Access key ID").fill(akid)
        page.get_by_label("Secret access key").fill(secret)
        with page.expect_response(lambda r: r.request.method == "POST") as resp:
            page.get_by_role("button", name="Sign in").click()
        assert resp.value.status == 429
        expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins")
        assert not [x for x in c.cookies() if x["name"] == "rotary_console"]
        shot(page, "signin-limited")
        # The address is locked for any key.
        page.get_by_label("Access key ID").fill(lib.ACCESS_KEY)
        page.get_by_label("Secret access key").fill(lib.SECRET_KEY)
        with page.expect_response(lambda r: r.request.method == "POST") as resp:
            page.get_by_role("button", name="Sign in").click()
        assert resp.value.status == 429
    finally:
        c.close()
    # Another client address signs in with its own key; the locked key id stays refused.
    status, _ = signin_from(srv, "127.0.0.2", lib.ACCESS_KEY, lib.SECRET_KEY)
    assert status == 303
    status, text = signin_from(srv, "127.0.0.2", akid, secret)
    assert status == 429 and "Too many failed sign-ins" in text
    # The API is not affected: the key still signs requests.
    lib.expect_error(srv.client(access_key=akid, secret_key=secret).list_secrets,
                     "AccessDeniedException")
    # The refusals are audited, never with a secret.
    recs = [json.loads(x) for x in (srv.data_dir / "audit.log").read_text().splitlines()]
    signins = [r for r in recs if r["Operation"] == "console:SignIn"]
    outcomes = [r["Outcome"] for r in signins if r.get("AccessKeyId") == akid]
    assert outcomes == ["AuthenticationFailed"] * 5 + ["ThrottlingException"] * 2, outcomes
    assert any(r["Outcome"] == "Allowed" and r.get("SourceAddress") == "127.0.0.2"
               for r in signins)
    log = (srv.data_dir / "audit.log").read_text()
    assert secret not in log and "wrong-secret" not in log
