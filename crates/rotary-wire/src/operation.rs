//! `X-Amz-Target` → operation.

macro_rules! operations {
    ($( $op:ident ),* $(,)?) => {
        /// An operation of the Secrets Manager API (`secretsmanager.<Op>`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation { $( #[allow(missing_docs)] $op ),* }

        impl Operation {
            /// The operation name as in `X-Amz-Target`.
            pub fn name(self) -> &'static str {
                match self { $( Operation::$op => stringify!($op) ),* }
            }
            /// Every operation.
            pub const ALL: &'static [Operation] = &[ $( Operation::$op ),* ];
        }
    };
}

operations! {
    CreateSecret,
    GetSecretValue,
    BatchGetSecretValue,
    PutSecretValue,
    UpdateSecret,
    UpdateSecretVersionStage,
    DescribeSecret,
    ListSecrets,
    ListSecretVersionIds,
    DeleteSecret,
    RestoreSecret,
    TagResource,
    UntagResource,
    GetRandomPassword,
    PutResourcePolicy,
    GetResourcePolicy,
    DeleteResourcePolicy,
    ValidateResourcePolicy,
    RotateSecret,
    CancelRotateSecret,
    ReplicateSecretToRegions,
    RemoveRegionsFromReplication,
    StopReplicationToReplica,
}

/// The target prefix of Secrets Manager operations.
pub const TARGET_PREFIX: &str = "secretsmanager.";

impl Operation {
    /// Parses `secretsmanager.<Op>`; anything else is unknown.
    pub fn from_target(target: &str) -> Option<Self> {
        let name = target.strip_prefix(TARGET_PREFIX)?;
        Self::ALL.iter().copied().find(|op| op.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_targets_only() {
        assert_eq!(
            Operation::from_target("secretsmanager.GetSecretValue"),
            Some(Operation::GetSecretValue)
        );
        assert_eq!(
            Operation::from_target("secretsmanager.getSecretValue"),
            None
        );
        assert_eq!(Operation::from_target("kms.GetSecretValue"), None);
        assert_eq!(Operation::from_target(""), None);
        for op in Operation::ALL {
            assert_eq!(
                Operation::from_target(&format!("secretsmanager.{}", op.name())),
                Some(*op)
            );
        }
    }
}
