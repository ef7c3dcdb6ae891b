// The README's browser example ("A complete example: a thumbs-down from a web page"), sending
// with plain fetch. The receiver's URL and the token come in the page's URL fragment
// (#receiver=...&token=...), as the backend that renders the page would put them in it; the
// README's page fetches its token from its own backend instead.
const PARAMS = new URLSearchParams(location.hash.slice(1));
const RECEIVER = PARAMS.get("receiver");
const TOKEN = PARAMS.get("token");

// What the page sees of an answer: the status and JSON body, or the error fetch rejected with
// (a TypeError when the browser blocks the request, as after a failed CORS preflight).
async function observe(request) {
  try {
    const response = await request;
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null,
             retryAfter: response.headers.get("retry-after") };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
}

function thumbsDownLogs(sessionId, comment) {
  const text = (key, value) => ({ key, value: { stringValue: value } });
  const body = { resourceLogs: [{
    resource: { attributes: [text("service.name", "shop-web")] },
    scopeLogs: [{ logRecords: [{
      timeUnixNano: `${Date.now()}000000`,
      eventName: "feedback.user_feedback",
      body: { stringValue: comment },
      attributes: [text("session.id", sessionId), text("feedback.thumbs", "down")],
    }] }],
  }] };
  return observe(fetch(`${RECEIVER}/v1/logs`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify(body),
  }));
}

function thumbsDownEvent(sessionId, comment) {
  return observe(fetch(`${RECEIVER}/api/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ event_type: "user_feedback", session_id: sessionId,
                           thumbs: "down", comment }),
  }));
}
