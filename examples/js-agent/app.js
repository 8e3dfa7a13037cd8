// A briotui agent in JavaScript: the echo agent's shape, built with componentize-js.
//
// It targets the `minimal` world of the brio WIT package (`briotui agents wit --out wit`
// exports it): it may log, read the kernel's clock and ask the model, nothing else.
//
// How WIT maps to JavaScript here:
// - the `agent` interface is exported as an object `agent` with a `run(task)` method;
// - a `result<outcome, error>` is returned by returning the outcome, and failed by
//   throwing `{ kind, message }` (kind is the error-kind in kebab-case, e.g. "not-found");
// - a host call that fails throws; its `payload` is the `{ kind, message }` error;
// - enums are strings ("info", "user"), options are `undefined` when absent;
// - u64 values (the clock) are BigInts: convert with Number() before mixing with numbers.

import { emit } from "brio:agent/log@0.1.0";
import { monotonicNs } from "brio:agent/clock@0.1.0";
import { complete } from "brio:agent/llm@0.1.0";

const SYSTEM_PROMPT = "You are a terse assistant inside briotui. Answer the request directly.";

function run(task) {
  const goal = task.goal.trim();
  if (goal === "") {
    throw { kind: "invalid", message: "The task is empty: say what to answer." };
  }
  const started = monotonicNs(); // a BigInt
  emit("info", `js-agent: asking the model about ${JSON.stringify(goal.slice(0, 60))}`);
  let reply;
  try {
    reply = complete({
      messages: [
        { role: "system", content: SYSTEM_PROMPT },
        { role: "user", content: goal },
      ],
      maxTokens: 1024,
      temperature: undefined,
      stop: [],
      purpose: "answer the request",
    });
  } catch (failure) {
    const error = failure.payload ?? { kind: "failed", message: String(failure) };
    emit("error", `js-agent: the model call failed: ${error.message}`);
    throw { kind: error.kind, message: `The model call failed: ${error.message}` };
  }
  const elapsedMs = Number((monotonicNs() - started) / 1_000_000n);
  return {
    summary: reply.text,
    data: JSON.stringify({
      language: "javascript",
      provider: reply.provider,
      model: reply.model,
      input_tokens: reply.usage.inputTokens,
      output_tokens: reply.usage.outputTokens,
      elapsed_ms: elapsedMs,
    }),
  };
}

export const agent = { run };
