/** The agent's version string, reported to the coordinator and printed by `wiremesh --version`. */

/** Semantic version of this agent build (packages/mesh-agent/package.json). */
export const AGENT_SEMVER = '0.1.0';
/** What the agent reports as its version. */
export const AGENT_VERSION = `wiremesh ${AGENT_SEMVER}`;
