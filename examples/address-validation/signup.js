// Validates the address through the gateway's /api/address route and shows the result.
// tollgate.fetch (from /_tollgate/client.js) adds the page token and solves challenges when asked.
document.getElementById("signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("result");
  const q = document.getElementById("address").value.trim();
  const country = document.getElementById("country").value;
  result.className = "pending";
  result.textContent = "Checking…";
  try {
    const response = await tollgate.fetch(`/api/address?q=${encodeURIComponent(q)}&country=${country}`);
    const body = await response.json();
    if (response.ok) {
      result.className = body.valid ? "ok" : "warn";
      result.textContent = `${body.valid ? "✓ Valid" : "? Unverified"}: ${body.formatted} (postcode ${body.postcode})`;
    } else {
      const reasons = (body.errors || []).map((e) => `${e.field} ${e.detail}`).join("; ");
      result.className = "error";
      result.textContent = `${body.title}${reasons ? ": " + reasons : ""} (request ${body.request_id})`;
    }
  } catch (error) {
    result.className = "error";
    result.textContent = "The address service is unreachable.";
  }
});
