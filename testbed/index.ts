// tlsnic testbed: scenarios for RX resync (issue 5). Parse or build a scenario, run it, read the report.
export { parseJsonWithPositions, formatPath, type JsonValue, type ParsedJson, type Pos } from './json.ts';
export { ScenarioError, loadScenarioFile, parseScenario, validateScenario, type ScenarioIssue } from './load.ts';
export {
  scenarioSchema, impairmentSchema, driverSchema, expectSchema, profileId, resyncTypeOf, type DriverProfile, type Expectations,
  type Impairment, type ProfileId, type Range, type Scenario, type ScenarioInput, type SoakSpec,
} from './schema.ts';
export {
  runScenarioObject, type Episode, type FlowReport, type HostReport, type ProfileRun, type ResyncType, type RunOptions, type ScenarioResult,
} from './runner.ts';
export { compileImpairments, type ImpairTally } from './impair.ts';
export { buildWorld, connectFlow, recordStarts, type Flow, type FlowDir, type TbHost, type TbWorld } from './world.ts';
