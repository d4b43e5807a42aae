// Two steps: POST the email to /_tollgate/verify (the gateway mails a link bound to this browser's
// session), then, once the link was opened (the gateway redirects here with ?verified=1), check the
// address through /api/address. tollgate.fetch adds the page token.
const result = document.getElementById("result");

function show(kind, text) {
  result.className = kind;
  result.textContent = text;
}

function problemText(body) {
  const reasons = (body.errors || []).map((e) => `${e.field} ${e.detail}`).join("; ");
  return `${body.title}: ${body.detail || reasons} (request ${body.request_id})`;
}

if (new URLSearchParams(location.search).get("verified") === "1") {
  show("ok", "✓ Email confirmed. Now check your street address.");
}

document.getElementById("email-step").addEventListener("submit", async (event) => {
  event.preventDefault();
  show("pending", "Sending…");
  try {
    const response = await tollgate.fetch("/_tollgate/verify", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: document.getElementById("email").value.trim() }),
    });
    const body = await response.json();
    if (response.status === 202) {
      show("ok", `Check your inbox: the link is valid for ${Math.round(body.expires_in / 60)} minutes. Open it in this browser.`);
    } else {
      show("error", problemText(body));
    }
  } catch (error) {
    show("error", "The sign-up service is unreachable.");
  }
});

document.getElementById("address-step").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = document.getElementById("address").value.trim();
  const country = document.getElementById("country").value;
  show("pending", "Checking…");
  try {
    const response = await tollgate.fetch(`/api/address?q=${encodeURIComponent(q)}&country=${country}`);
    const body = await response.json();
    if (response.ok) {
      show(body.valid ? "ok" : "warn", `${body.valid ? "✓ Valid" : "? Unverified"}: ${body.formatted} (postcode ${body.postcode})`);
    } else if (body.reason === "verification-required") {
      show("error", "Confirm your email first: send yourself a link above and open it in this browser.");
    } else {
      show("error", problemText(body));
    }
  } catch (error) {
    show("error", "The address service is unreachable.");
  }
});
