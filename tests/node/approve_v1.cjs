// An approval answered the way the Agent Chat UI does, with the npm package those UIs use (@langchain/langgraph-sdk):
// a customer's ticket stops at its approval; a reviewer reads LangChain v1's HITLRequest from the interrupt and
// resumes with {"decisions": [{"type": "approve"}]}. Prints one JSON line for tests/test_hitl_server.py to check.
//
//   node approve_v1.cjs SDK_DIR URL CUSTOMER_KEY REVIEWER_KEY
const path = require("node:path");
const { createRequire } = require("node:module");

async function main() {
  const [sdkDir, url, customerKey, reviewerKey] = process.argv.slice(2);
  const { Client } = createRequire(path.join(sdkDir, "package.json"))("@langchain/langgraph-sdk");
  const customer = new Client({ apiUrl: url, apiKey: customerKey });
  const reviewer = new Client({ apiUrl: url, apiKey: reviewerKey });

  const thread = await customer.threads.create();
  const text = "I want a refund of EUR 4 for order 1004.";
  await customer.runs.wait(thread.thread_id, "supervisor", { input: { messages: [{ role: "user", content: text }] } });
  const waiting = await reviewer.threads.getState(thread.thread_id);
  const request = waiting.tasks.flatMap((t) => t.interrupts || []).map((i) => i.value)[0];

  await reviewer.runs.wait(thread.thread_id, "supervisor", {
    command: { resume: { decisions: [{ type: "approve" }] } },
  });
  const done = await reviewer.threads.getState(thread.thread_id);
  console.log(
    JSON.stringify({
      waiting_status: waiting.values.status,
      action_requests: request.action_requests,
      review_configs: request.review_configs,
      status: done.values.status,
      action_ok: done.values.action_result ? done.values.action_result.ok : null,
      next: done.next,
    }),
  );
}

main().catch((err) => {
  console.error(String((err && err.stack) || err));
  process.exit(1);
});
