//! DescribeInstanceTypes, DescribeInstanceTypeOfferings, DescribeRegions,
//! DescribeAvailabilityZones and DescribeImages.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::catalog::{zones, Catalog, InstanceType, AMAZON_OWNER, IMAGES, REGIONS};
use crate::query::{any_matches, filters, invalid, page, Input};

fn type_values(t: &InstanceType, filter: &str) -> Option<Vec<String>> {
    let b = |v: bool| vec![v.to_string()];
    Some(match filter {
        "instance-type" => vec![t.name.clone()],
        "processor-info.supported-architecture" => t.architectures.clone(),
        "processor-info.manufacturer" => vec![t.manufacturer.clone()],
        "vcpu-info.default-vcpus" => vec![t.vcpus.to_string()],
        "memory-info.size-in-mib" => vec![t.memory_mib.to_string()],
        "current-generation" => b(t.current_generation),
        "bare-metal" => b(t.bare_metal),
        "burstable-performance-supported" => b(t.burstable),
        "free-tier-eligible" => b(t.free_tier()),
        "supported-usage-class" => t.usage_classes.clone(),
        "hypervisor" => vec![hypervisor(t).to_owned()],
        "network-info.network-performance" => vec![t.network.clone()],
        "supported-root-device-type" => vec!["ebs".into()],
        "supported-virtualization-type" => vec!["hvm".into()],
        "instance-storage-supported" => b(false),
        "gpu-info.gpus.count" if t.gpus > 0 => vec![t.gpus.to_string()],
        "gpu-info.gpus.count" => Vec::new(),
        _ => return None,
    })
}

fn hypervisor(t: &InstanceType) -> &'static str {
    if t.bare_metal {
        ""
    } else {
        "nitro"
    }
}

fn type_xml(t: &InstanceType) -> Value {
    let mut value = json!({
        "instanceType": t.name,
        "currentGeneration": t.current_generation,
        "freeTierEligible": t.free_tier(),
        "supportedUsageClasses": t.usage_classes,
        "supportedRootDeviceTypes": ["ebs"],
        "supportedVirtualizationTypes": ["hvm"],
        "bareMetal": t.bare_metal,
        "processorInfo": { "supportedArchitectures": t.architectures, "manufacturer": t.manufacturer },
        "vCpuInfo": { "defaultVCpus": t.vcpus },
        "memoryInfo": { "sizeInMiB": t.memory_mib },
        "instanceStorageSupported": false,
        "networkInfo": { "networkPerformance": t.network },
        "burstablePerformanceSupported": t.burstable,
        "supportedInRegion": true,
    });
    if !t.bare_metal {
        value["hypervisor"] = json!("nitro");
    }
    if t.gpus > 0 {
        value["gpuInfo"] = json!({ "gpus": [{ "count": t.gpus }] });
    }
    value
}

pub fn describe_instance_types(input: &Value) -> Result<Value, AwsError> {
    let catalog = Catalog::get();
    let names = input.strings("InstanceType");
    let unknown: Vec<&String> = names.iter().filter(|n| catalog.instance_type(n).is_none()).collect();
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
        return Err(AwsError::new(
            400,
            "InvalidInstanceType",
            format!("The following supplied instance types do not exist: [{}]", list.join(", ")),
        ));
    }
    let filters = filters(input);
    for (name, _) in &filters {
        if type_values(&catalog.types[0], name).is_none() {
            return Err(invalid(format!("The filter '{name}' is invalid")));
        }
    }
    let matching: Vec<&InstanceType> = catalog
        .types
        .iter()
        .filter(|t| names.is_empty() || names.contains(&t.name))
        .filter(|t| filters.iter().all(|(n, v)| any_matches(v, &type_values(t, n).unwrap_or_default())))
        .collect();
    let (page, next) = page(input, matching, 5, 100)?;
    Ok(json!({ "instanceTypeSet": page.into_iter().map(type_xml).collect::<Vec<_>>(), "nextToken": next }))
}

pub fn describe_instance_type_offerings(region: &str, input: &Value) -> Result<Value, AwsError> {
    let location_type = input.str("LocationType").unwrap_or("region");
    let locations: Vec<String> = match location_type {
        "region" => vec![region.to_owned()],
        "availability-zone" => zones(region).into_iter().map(|z| z.0).collect(),
        "availability-zone-id" => zones(region).into_iter().map(|z| z.1).collect(),
        other => return Err(invalid(format!("Invalid value '{other}' for LocationType"))),
    };
    let filters = filters(input);
    let mut offerings = Vec::new();
    for t in &Catalog::get().types {
        for location in &locations {
            let ok = filters.iter().all(|(name, values)| match name.as_str() {
                "instance-type" => any_matches(values, std::slice::from_ref(&t.name)),
                "location" => any_matches(values, std::slice::from_ref(location)),
                _ => false,
            });
            if ok {
                offerings.push(
                    json!({ "instanceType": t.name, "locationType": location_type, "location": location }),
                );
            }
        }
    }
    let (page, next) = page(input, offerings, 5, 1000)?;
    Ok(json!({ "instanceTypeOfferingSet": page, "nextToken": next }))
}

pub fn describe_regions(input: &Value) -> Result<Value, AwsError> {
    let names = input.strings("RegionName");
    let filters = filters(input);
    for name in &names {
        if !REGIONS.iter().any(|(r, _)| r == name) {
            return Err(AwsError::new(
                400,
                "InvalidParameterValue",
                format!("Invalid region names: [{name}]"),
            ));
        }
    }
    let regions: Vec<Value> = REGIONS
        .iter()
        .filter(|(r, _)| names.is_empty() || names.iter().any(|n| n == r))
        .filter(|(r, _)| {
            filters.iter().all(|(n, v)| match n.as_str() {
                "region-name" => any_matches(v, &[r.to_string()]),
                "endpoint" => any_matches(v, &[format!("ec2.{r}.amazonaws.com")]),
                "opt-in-status" => any_matches(v, &["opt-in-not-required".to_owned()]),
                _ => true,
            })
        })
        .map(|(r, _)| json!({ "regionName": r, "regionEndpoint": format!("ec2.{r}.amazonaws.com"), "optInStatus": "opt-in-not-required" }))
        .collect();
    Ok(json!({ "regionInfo": regions }))
}

pub fn describe_availability_zones(region: &str, input: &Value) -> Result<Value, AwsError> {
    let names = input.strings("ZoneName");
    let ids = input.strings("ZoneId");
    let filters = filters(input);
    let all = zones(region);
    for name in &names {
        if !all.iter().any(|(z, _)| z == name) {
            return Err(invalid(format!("The zone '{name}' does not exist.")));
        }
    }
    let set: Vec<Value> = all
        .iter()
        .filter(|(z, id)| (names.is_empty() && ids.is_empty()) || names.contains(z) || ids.contains(id))
        .filter(|(z, id)| {
            filters.iter().all(|(n, v)| match n.as_str() {
                "zone-name" => any_matches(v, std::slice::from_ref(z)),
                "zone-id" => any_matches(v, std::slice::from_ref(id)),
                "region-name" => any_matches(v, &[region.to_owned()]),
                "state" => any_matches(v, &["available".to_owned()]),
                "zone-type" => any_matches(v, &["availability-zone".to_owned()]),
                _ => true,
            })
        })
        .map(|(z, id)| {
            json!({
                "zoneName": z, "zoneId": id, "zoneState": "available", "regionName": region,
                "optInStatus": "opt-in-not-required", "groupName": region, "networkBorderGroup": region,
                "zoneType": "availability-zone", "messageSet": [],
            })
        })
        .collect();
    Ok(json!({ "availabilityZoneInfo": set }))
}

pub fn describe_images(input: &Value) -> Result<Value, AwsError> {
    let ids = input.strings("ImageId");
    let owners = input.strings("Owner");
    let filters = filters(input);
    for id in &ids {
        if crate::catalog::image(id).is_none() {
            return Err(AwsError::new(
                400,
                "InvalidAMIID.NotFound",
                format!("The image id '[{id}]' does not exist"),
            ));
        }
    }
    let set: Vec<Value> = IMAGES
        .iter()
        .filter(|i| ids.is_empty() || ids.iter().any(|id| id == i.id))
        .filter(|_| owners.is_empty() || owners.iter().any(|o| o == "amazon" || o == AMAZON_OWNER || o == "self"))
        .filter(|i| {
            filters.iter().all(|(n, v)| match n.as_str() {
                "name" => any_matches(v, &[i.name.to_owned()]),
                "image-id" => any_matches(v, &[i.id.to_owned()]),
                "architecture" => any_matches(v, &[i.arch.to_owned()]),
                "owner-alias" => any_matches(v, &["amazon".to_owned()]),
                "owner-id" => any_matches(v, &[AMAZON_OWNER.to_owned()]),
                "state" => any_matches(v, &["available".to_owned()]),
                "root-device-type" => any_matches(v, &["ebs".to_owned()]),
                "virtualization-type" => any_matches(v, &["hvm".to_owned()]),
                "is-public" => any_matches(v, &["true".to_owned()]),
                _ => true,
            })
        })
        .map(|i| {
            json!({
                "imageId": i.id, "name": i.name, "architecture": i.arch, "imageState": "available",
                "imageOwnerId": AMAZON_OWNER, "imageOwnerAlias": "amazon", "isPublic": true,
                "imageLocation": format!("amazon/{}", i.name), "imageType": "machine",
                "creationDate": "2026-01-01T00:00:00.000Z", "platformDetails": "Linux/UNIX", "usageOperation": "RunInstances",
                "rootDeviceType": "ebs", "rootDeviceName": "/dev/xvda", "virtualizationType": "hvm", "hypervisor": "xen",
                "enaSupport": true, "bootMode": "uefi-preferred", "imdsSupport": "v2.0",
                "description": format!("Amazon Linux 2023 stand-in: the nimbus host's root file system, read-only ({})", i.arch),
                "blockDeviceMapping": [], "tagSet": [],
            })
        })
        .collect();
    Ok(json!({ "imagesSet": set }))
}
