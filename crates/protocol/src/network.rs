//! Where a request came from: the source address, and the VPC and VPC endpoint it is treated as
//! arriving through.
//!
//! Strongroom does not run inside a VPC, so the operator maps address ranges to VPC ids and VPC endpoint
//! ids in the configuration; requests from those ranges then carry `aws:SourceVpc` and `aws:SourceVpce` as
//! requests through a VPC endpoint do in AWS. Behind a reverse proxy, `X-Forwarded-For` names the client,
//! but only when the proxy's own address is configured as trusted.

use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 address range in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `address` is inside the range.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(text: &str) -> Result<Cidr, String> {
        let invalid =
            || format!("'{text}' is not an address range: write it as 10.0.0.0/8 or fd00::/8");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| invalid())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => max,
        };
        if prefix > max {
            return Err(invalid());
        }
        Ok(Cidr { network, prefix })
    }
}

/// One configured network: requests from `range` arrive through `vpc_id` and `vpc_endpoint_id`.
#[derive(Debug, Clone)]
pub struct VpcMapping {
    /// The source addresses.
    pub range: Cidr,
    /// The VPC id, for `aws:SourceVpc`.
    pub vpc_id: String,
    /// The VPC endpoint id, for `aws:SourceVpce`.
    pub vpc_endpoint_id: Option<String>,
}

/// The operator's network configuration.
#[derive(Debug, Clone, Default)]
pub struct NetworkContext {
    /// Address ranges treated as VPCs, first match wins.
    pub vpcs: Vec<VpcMapping>,
    /// Proxies whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// What the network says about one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) source_vpc: Option<String>,
    pub(crate) source_vpce: Option<String>,
}

impl NetworkContext {
    /// The origin of a request from `peer` carrying `headers`.
    pub(crate) fn origin(&self, peer: Option<IpAddr>, headers: &http::HeaderMap) -> Origin {
        let forwarded = || {
            let header = headers.get("x-forwarded-for")?.to_str().ok()?;
            header.split(',').next()?.trim().parse::<IpAddr>().ok()
        };
        let source_ip = match peer {
            Some(peer)
                if self
                    .trusted_proxies
                    .iter()
                    .any(|proxy| proxy.contains(peer)) =>
            {
                forwarded().or(Some(peer))
            }
            other => other,
        };
        let vpc = source_ip.and_then(|ip| self.vpcs.iter().find(|vpc| vpc.range.contains(ip)));
        Origin {
            source_ip,
            source_vpc: vpc.map(|vpc| vpc.vpc_id.clone()),
            source_vpce: vpc.and_then(|vpc| vpc.vpc_endpoint_id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::network::{Cidr, NetworkContext, VpcMapping};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn cidr_ranges() {
        let range: Cidr = "10.1.0.0/16".parse().expect("valid");
        assert!(range.contains(ip("10.1.255.3")));
        assert!(!range.contains(ip("10.2.0.1")));
        assert!(!range.contains(ip("::1")));
        assert!(
            "0.0.0.0/0"
                .parse::<Cidr>()
                .expect("valid")
                .contains(ip("8.8.8.8"))
        );
        assert!(
            "fd00::/8"
                .parse::<Cidr>()
                .expect("valid")
                .contains(ip("fd12::1"))
        );
        assert!(
            "127.0.0.1"
                .parse::<Cidr>()
                .expect("valid")
                .contains(ip("127.0.0.1"))
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense/8".parse::<Cidr>().is_err());
    }

    #[test]
    fn vpcs_and_trusted_proxies() {
        let network = NetworkContext {
            vpcs: vec![VpcMapping {
                range: "10.0.0.0/8".parse().expect("valid"),
                vpc_id: "vpc-1".to_owned(),
                vpc_endpoint_id: Some("vpce-1".to_owned()),
            }],
            trusted_proxies: vec!["127.0.0.1/32".parse().expect("valid")],
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "10.9.8.7, 127.0.0.1".parse().expect("a header"),
        );
        let through_proxy = network.origin(Some(ip("127.0.0.1")), &headers);
        assert_eq!(through_proxy.source_ip, Some(ip("10.9.8.7")));
        assert_eq!(through_proxy.source_vpc.as_deref(), Some("vpc-1"));
        assert_eq!(through_proxy.source_vpce.as_deref(), Some("vpce-1"));
        // An untrusted peer cannot claim another address.
        let direct = network.origin(Some(ip("192.0.2.1")), &headers);
        assert_eq!(direct.source_ip, Some(ip("192.0.2.1")));
        assert_eq!(direct.source_vpc, None);
    }
}
