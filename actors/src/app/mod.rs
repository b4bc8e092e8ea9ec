pub mod accept;
