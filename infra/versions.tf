# Terraform and provider versions. Google provider 6.31 and later (6.x and
# 7.x): google_iap_web_cloud_run_service_iam_member arrived in 6.31. The
# google-beta provider serves only the optional Identity-Aware Proxy in front
# of the Analytics page (iap.tf): iap_enabled on a Cloud Run service is a
# preview field there (added in 6.30).
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.31, < 8.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 6.31, < 8.0"
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

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = {
    app = "rbm-analytics"
  }
}

data "google_project" "this" {
  project_id = var.project_id
}
