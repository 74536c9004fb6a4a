# Terraform and provider versions. Google provider 6.x and 7.x are both
# supported: every resource and argument below is documented for both.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app = "rbm-analytics"
  }
}

data "google_project" "this" {
  project_id = var.project_id
}
