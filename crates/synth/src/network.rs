//! The VPC of an environment: public subnets (load balancers, NAT gateways) and
//! private subnets (tasks) over `availabilityZones` AZs chosen with `Fn::GetAZs`,
//! the NAT cost tier, flow logs and optional VPC endpoints.

use crate::Ctx;
use crate::cfn::{Template, assume_by, att, policy, r, select, sub, tags};
use crate::foundation::INTERFACE_ENDPOINTS;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nat {
    None,
    Single,
    PerAz,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub cidr: String,
    pub azs: usize,
    pub nat: Nat,
    pub endpoints: bool,
    pub flow_log_retention_days: i64,
    /// Subnet CIDRs: public ones first, then private, one of each per AZ.
    pub public: Vec<String>,
    pub private: Vec<String>,
}

/// Parses `a.b.c.d/p`.
fn parse_cidr(cidr: &str) -> Option<(u32, u32)> {
    let (addr, prefix) = cidr.split_once('/')?;
    let prefix: u32 = prefix.parse().ok()?;
    let mut ip: u32 = 0;
    let octets: Vec<&str> = addr.split('.').collect();
    if octets.len() != 4 || prefix > 32 {
        return None;
    }
    for o in octets {
        ip = (ip << 8) | o.parse::<u8>().ok()? as u32;
    }
    Some((ip, prefix))
}

fn format_cidr(ip: u32, prefix: u32) -> String {
    format!(
        "{}.{}.{}.{}/{prefix}",
        ip >> 24,
        (ip >> 16) & 255,
        (ip >> 8) & 255,
        ip & 255
    )
}

/// Splits the VPC range into `2 × azs` equal subnets. `Err` says why it cannot.
pub fn subnets(cidr: &str, azs: usize) -> Result<(Vec<String>, Vec<String>), String> {
    let (ip, prefix) = parse_cidr(cidr).ok_or_else(|| format!("`{cidr}` is not an IPv4 CIDR"))?;
    let count = 2 * azs as u32;
    let bits = 32 - (count - 1).leading_zeros();
    let sub_prefix = prefix + bits;
    // A load balancer needs a /27 with at least 8 free addresses per subnet.
    if sub_prefix > 27 {
        return Err(format!(
            "{cidr} split into {count} subnets gives /{sub_prefix} subnets; load balancers need at least /27: use a /{} or larger VPC range, or fewer AZs",
            27 - bits
        ));
    }
    let size = 1u32 << (32 - sub_prefix);
    let base = ip & (u32::MAX.checked_shl(32 - prefix).unwrap_or(0));
    let at = |i: u32| format_cidr(base + i * size, sub_prefix);
    let public = (0..azs as u32).map(at).collect();
    let private = (azs as u32..count).map(at).collect();
    Ok((public, private))
}

pub fn vpc(t: &mut Template, cx: &Ctx<'_>, layout: &Layout) {
    let project = cx.project();
    let env = cx.names.base;
    let prefix = cx.names.base_prefix();
    let tg = |name: &str| tags(project, env, None, Some(&format!("{prefix}-{name}")));
    let az = |i: usize| select(i, json!({ "Fn::GetAZs": "" }));

    t.resource(
        "Vpc",
        "AWS::EC2::VPC",
        json!({
            "CidrBlock": layout.cidr,
            "EnableDnsSupport": true,
            "EnableDnsHostnames": true,
            "Tags": tg("vpc"),
        }),
    );
    t.resource(
        "InternetGateway",
        "AWS::EC2::InternetGateway",
        json!({ "Tags": tg("igw") }),
    );
    t.resource(
        "InternetGatewayAttachment",
        "AWS::EC2::VPCGatewayAttachment",
        json!({ "VpcId": r("Vpc"), "InternetGatewayId": r("InternetGateway") }),
    );
    t.resource(
        "PublicRouteTable",
        "AWS::EC2::RouteTable",
        json!({ "VpcId": r("Vpc"), "Tags": tg("public") }),
    );
    t.resource(
        "PublicDefaultRoute",
        "AWS::EC2::Route",
        json!({
            "RouteTableId": r("PublicRouteTable"),
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": r("InternetGateway"),
        }),
    )
    .depends_on(&["InternetGatewayAttachment"]);

    for i in 0..layout.azs {
        t.resource(
            &format!("PublicSubnet{i}"),
            "AWS::EC2::Subnet",
            json!({
                "VpcId": r("Vpc"),
                "AvailabilityZone": az(i),
                "CidrBlock": layout.public[i],
                "MapPublicIpOnLaunch": false,
                "Tags": tg(&format!("public-{i}")),
            }),
        );
        t.resource(
            &format!("PublicSubnet{i}Routes"),
            "AWS::EC2::SubnetRouteTableAssociation",
            json!({ "SubnetId": r(&format!("PublicSubnet{i}")), "RouteTableId": r("PublicRouteTable") }),
        );
        t.resource(
            &format!("PrivateSubnet{i}"),
            "AWS::EC2::Subnet",
            json!({
                "VpcId": r("Vpc"),
                "AvailabilityZone": az(i),
                "CidrBlock": layout.private[i],
                "MapPublicIpOnLaunch": false,
                "Tags": tg(&format!("private-{i}")),
            }),
        );
        t.resource(
            &format!("PrivateRouteTable{i}"),
            "AWS::EC2::RouteTable",
            json!({ "VpcId": r("Vpc"), "Tags": tg(&format!("private-{i}")) }),
        );
        t.resource(
            &format!("PrivateSubnet{i}Routes"),
            "AWS::EC2::SubnetRouteTableAssociation",
            json!({ "SubnetId": r(&format!("PrivateSubnet{i}")), "RouteTableId": r(&format!("PrivateRouteTable{i}")) }),
        );
    }

    let nats = match layout.nat {
        Nat::None => 0,
        Nat::Single => 1,
        Nat::PerAz => layout.azs,
    };
    for i in 0..nats {
        t.resource(
            &format!("NatAddress{i}"),
            "AWS::EC2::EIP",
            json!({ "Domain": "vpc", "Tags": tg(&format!("nat-{i}")) }),
        )
        .depends_on(&["InternetGatewayAttachment"]);
        t.resource(
            &format!("NatGateway{i}"),
            "AWS::EC2::NatGateway",
            json!({
                "AllocationId": att(&format!("NatAddress{i}"), "AllocationId"),
                "SubnetId": r(&format!("PublicSubnet{i}")),
                "Tags": tg(&format!("nat-{i}")),
            }),
        );
    }
    if nats > 0 {
        for i in 0..layout.azs {
            let nat = if nats == 1 { 0 } else { i };
            t.resource(
                &format!("PrivateDefaultRoute{i}"),
                "AWS::EC2::Route",
                json!({
                    "RouteTableId": r(&format!("PrivateRouteTable{i}")),
                    "DestinationCidrBlock": "0.0.0.0/0",
                    "NatGatewayId": r(&format!("NatGateway{nat}")),
                }),
            );
        }
    }

    // Flow logs of every ENI in the VPC, to a KMS-encrypted log group.
    let flow_group = format!("/pantstack/{project}/{}/vpc-flow-logs", cx.names.base);
    t.resource(
        "FlowLogGroup",
        "AWS::Logs::LogGroup",
        json!({
            "LogGroupName": flow_group,
            "RetentionInDays": layout.flow_log_retention_days,
            "KmsKeyId": att("Key", "Arn"),
            "Tags": tags(project, env, None, None),
        }),
    );
    t.resource(
        "FlowLogRole",
        "AWS::IAM::Role",
        json!({
            "RoleName": sub(&cx.names.base_role("flow-logs")),
            "AssumeRolePolicyDocument": assume_by("vpc-flow-logs.amazonaws.com"),
            "Policies": [{
                "PolicyName": "write-flow-logs",
                "PolicyDocument": policy(vec![json!({
                    "Sid": "WriteFlowLogGroup",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    "Resource": [att("FlowLogGroup", "Arn")],
                })]),
            }],
            "Tags": tags(project, env, None, None),
        }),
    );
    t.resource(
        "FlowLog",
        "AWS::EC2::FlowLog",
        json!({
            "ResourceId": r("Vpc"),
            "ResourceType": "VPC",
            "TrafficType": "ALL",
            "LogDestinationType": "cloud-watch-logs",
            "LogGroupName": r("FlowLogGroup"),
            "DeliverLogsPermissionArn": att("FlowLogRole", "Arn"),
            "MaxAggregationInterval": 60,
            "Tags": tg("flow-log"),
        }),
    );

    // The default security group allows nothing (no rules); ours name every rule.
    if layout.endpoints {
        let private_tables: Vec<Value> = (0..layout.azs)
            .map(|i| r(&format!("PrivateRouteTable{i}")))
            .collect();
        t.resource(
            "S3Endpoint",
            "AWS::EC2::VPCEndpoint",
            json!({
                "VpcId": r("Vpc"),
                "VpcEndpointType": "Gateway",
                "ServiceName": sub("com.amazonaws.${AWS::Region}.s3"),
                "RouteTableIds": private_tables,
            }),
        );
        t.resource(
            "EndpointSecurityGroup",
            "AWS::EC2::SecurityGroup",
            json!({
                "GroupDescription": format!("{prefix}: HTTPS from the VPC to interface endpoints"),
                "VpcId": r("Vpc"),
                "SecurityGroupIngress": [{
                    "Description": "HTTPS from inside the VPC",
                    "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                    "CidrIp": att("Vpc", "CidrBlock"),
                }],
                "SecurityGroupEgress": [{
                    "Description": "Nothing leaves an endpoint's interface",
                    "IpProtocol": "icmp", "FromPort": -1, "ToPort": -1,
                    "CidrIp": "127.0.0.1/32",
                }],
                "Tags": tg("endpoints"),
            }),
        );
        let subnets: Vec<Value> = (0..layout.azs)
            .map(|i| r(&format!("PrivateSubnet{i}")))
            .collect();
        for svc in INTERFACE_ENDPOINTS {
            t.resource(
                &format!("{}Endpoint", crate::names::logical(&[svc])),
                "AWS::EC2::VPCEndpoint",
                json!({
                    "VpcId": r("Vpc"),
                    "VpcEndpointType": "Interface",
                    "ServiceName": sub(&format!("com.amazonaws.${{AWS::Region}}.{svc}")),
                    "PrivateDnsEnabled": true,
                    "SubnetIds": subnets,
                    "SecurityGroupIds": [r("EndpointSecurityGroup")],
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_split_the_range_evenly() {
        let (public, private) = subnets("10.0.0.0/16", 2).expect("fits");
        assert_eq!(public, ["10.0.0.0/18", "10.0.64.0/18"]);
        assert_eq!(private, ["10.0.128.0/18", "10.0.192.0/18"]);
        let (public, private) = subnets("10.20.0.0/20", 3).expect("fits");
        assert_eq!(public, ["10.20.0.0/23", "10.20.2.0/23", "10.20.4.0/23"]);
        assert_eq!(private, ["10.20.6.0/23", "10.20.8.0/23", "10.20.10.0/23"]);
        // The host bits of the range are ignored.
        let (public, _) = subnets("10.1.7.9/24", 2).expect("fits");
        assert_eq!(public[0], "10.1.7.0/26");
    }

    #[test]
    fn subnets_too_small_for_a_load_balancer_are_refused() {
        let e = subnets("10.1.0.0/24", 6).expect_err("/28 subnets");
        assert!(e.contains("/28") && e.contains("/23"), "{e}");
        assert!(
            subnets("10.1.0.0/24", 4).is_ok(),
            "/27 is the smallest allowed"
        );
        assert!(subnets("nonsense", 2).is_err());
    }
}
