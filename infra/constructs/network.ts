import { Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  /** IPv4 range of the VPC, e.g. 10.40.0.0/16. */
  readonly cidr: string;
  /** Retention of the VPC flow logs. */
  readonly flowLogRetention: logs.RetentionDays;
}

/**
 * The VPC: isolated subnets only (no internet gateway, no NAT) in the stack's availability
 * zones. Lambdas, RDS Proxy and Redis talk inside it; Lambda logs, EMF metrics and traces leave
 * through the Lambda service. A later AWS API dependency (SNS, SQS, CloudWatch) gets a VPC
 * interface endpoint here rather than a NAT gateway.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      // The stack pins its availability zones; take them all (two by default).
      maxAzs: Stack.of(this).availabilityZones.length,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
      ],
      restrictDefaultSecurityGroup: true,
    });
    Validations.of(this.vpc).acknowledge({
      id: 'CloudFormation-Validate::W3010',
      reason:
        'Availability zones are pinned on purpose (context key availabilityZones): synthesis ' +
        'must not look them up, and subnets must not move between synths.',
    });

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: props.flowLogRetention });
    // Rejected flows answer "why can't the Lambda reach the proxy?" at a fraction of the cost
    // of logging all traffic.
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
  }
}
