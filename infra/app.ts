import { buildApp } from './build-app.ts';

// Run by the CDK CLI through cdk.json ("app": "npx tsx infra/app.ts").
buildApp().app.synth();
