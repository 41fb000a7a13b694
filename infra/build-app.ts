import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { type InfraConfig, readInfraConfig } from './config.ts';
import { DboptStack, type DboptStackProps } from './dbopt-stack.ts';

export interface BuiltApp {
  readonly app: App;
  readonly stack: DboptStack;
  readonly config: InfraConfig;
}

/**
 * Builds the CDK app: configuration from context, the stack, and the cdk-nag AwsSolutions
 * pack as a synthesis validation plugin, so any unacknowledged finding fails `cdk synth`.
 * `infra/app.ts` and the infra tests both start here, so they check the same app.
 */
export const buildApp = (
  props: AppProps = {},
  entries: DboptStackProps['entries'] = {},
): BuiltApp => {
  const app = new App(props);
  const config = readInfraConfig(app);
  const stack = new DboptStack(app, config.stackName, {
    config,
    entries,
    description: 'dbopt: serverless PostgreSQL optimization platform',
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, config };
};
