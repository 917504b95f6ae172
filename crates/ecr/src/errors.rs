//! ECR's error shapes (JSON 1.1, status 400 as AWS answers them) and the image store's errors
//! in their words.

use nimbus_api::AwsError;
use nimbus_images::ImageError;

pub fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidParameterException", message)
}

pub fn from_store(error: ImageError) -> AwsError {
    let message = error.to_string();
    let code = match &error {
        ImageError::RepositoryNotFound { .. } => "RepositoryNotFoundException",
        ImageError::RepositoryExists { .. } => "RepositoryAlreadyExistsException",
        ImageError::RepositoryNotEmpty { .. } => "RepositoryNotEmptyException",
        ImageError::ManifestUnknown(_) => "ImageNotFoundException",
        ImageError::TagImmutable { .. } => "ImageTagAlreadyExistsException",
        ImageError::ManifestBlobUnknown(_) => "LayersNotFoundException",
        ImageError::ManifestInvalid(_)
        | ImageError::Invalid(_)
        | ImageError::DigestInvalid(_)
        | ImageError::BlobUnknown(_)
        | ImageError::UploadUnknown(_)
        | ImageError::RangeInvalid(_)
        | ImageError::Hostile { .. }
        | ImageError::CannotPull(_) => "InvalidParameterException",
        ImageError::Db(_) | ImageError::Io(_) => return AwsError::new(500, "ServerException", message),
    };
    AwsError::new(400, code, message)
}
